"""Pseudo-labels: the confidence criterion, per-fold sets from each fold's own model, the recorded
set, the training arrays (pseudo images in the training part only), refusals, and the chain of
rounds (with a fake fold trainer; the real one in the slow smoke test)."""

import contextlib
import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tgssalt.cross_validation
import tgssalt.fold_training
import tgssalt.tracking
from fakes import config_for, write_data, write_fold
from PIL import Image
from tgssalt import pseudo_rounds
from tgssalt.config import DataConfig, resolve_config
from tgssalt.data import Dataset
from tgssalt.errors import UserError, run_cli
from tgssalt.layout import Outputs, base_run, parse_round_run, round_run
from tgssalt.metrics import binarize
from tgssalt.predictions import save_predictions
from tgssalt.pseudo_labels import (
    PseudoImages,
    Selection,
    band_mask_iou,
    check_for_training,
    confident_share,
    load_fold,
    make_pseudo_labels,
    select_confident,
    set_name,
    training_images,
)

CODE = Path(__file__).resolve().parents[1]
BASE = "fake-1"


def _hand_made_probs() -> np.ndarray:
    """Three 4x5 images (20 pixels): all confident; 19 of 20; 18 of 20 with the band's edges
    (exactly 0.2 and 0.8 are not confident: the band is strict)."""
    probs = np.full((3, 4, 5), 0.1, dtype=np.float16)
    probs[0, 2:] = 0.95
    probs[1, 0, 0] = 0.5
    probs[2, 0, 0], probs[2, 3, 4] = 0.2, 0.8
    probs[2, 1] = 0.9
    return probs


def test_confident_share_counts_pixels_outside_the_band():
    share = confident_share(_hand_made_probs(), 0.2, 0.8)
    np.testing.assert_allclose(share, [20 / 20, 19 / 20, 18 / 20])


@pytest.mark.parametrize(
    ("selection", "kept"),
    [
        (Selection(0.2, 0.8, 0.95), [True, True, False]),
        (Selection(0.2, 0.8, 0.9), [True, True, True]),
        (Selection(0.2, 0.8, 1.0), [True, False, False]),
        (Selection(0.05, 0.97, 0.5), [False, False, False]),  # 0.1 and 0.95 inside the band
        (Selection(0.3, 0.7, 0.95), [True, True, True]),  # 0.2 and 0.8 now outside it
    ],
)
def test_select_confident_applies_the_min_share(selection, kept):
    probs = _hand_made_probs()
    assert select_confident(probs, selection, binarize(probs, 0.5)).tolist() == kept


def _outline_probs() -> np.ndarray:
    """Four 4x5 images: empty and sure; 10 salt pixels at 0.95; the same plus 5 at 0.5 (masks of
    10 and 15 pixels at 0.3 and 0.7: IoU 2/3); all 20 pixels at 0.5 (IoU 0)."""
    probs = np.full((4, 4, 5), 0.1, dtype=np.float16)
    probs[1:3, :2] = 0.95
    probs[2, 2] = 0.5
    probs[3] = 0.5
    return probs


def test_band_mask_iou_measures_how_far_the_outline_moves():
    np.testing.assert_allclose(band_mask_iou(_outline_probs(), 0.3, 0.7), [1, 1, 2 / 3, 0])
    np.testing.assert_allclose(band_mask_iou(_outline_probs(), 0.05, 0.7), [0, 0.5, 0.5, 0])


@pytest.mark.parametrize(
    ("min_share", "kept"),
    [(0.6, [False, True, True, False]), (0.8, [False, True, False, False])],
)
def test_salt_iou_keeps_stable_salt_masks_and_never_empty_ones(min_share, kept):
    probs = _outline_probs()
    selection = Selection(0.3, 0.7, min_share, "salt_iou")
    assert select_confident(probs, selection, binarize(probs, 0.4)).tolist() == kept
    no_salt = np.zeros(probs.shape, dtype=np.uint8)  # the labels decide what holds salt
    assert not select_confident(probs, selection, no_salt).any()


def test_bad_selection_is_refused(tmp_path):
    with pytest.raises(UserError, match="--confidence 0.8 0.2"):
        make_pseudo_labels(tmp_path, tmp_path, BASE, selection=Selection(0.8, 0.2))
    with pytest.raises(UserError, match="--min-share 0"):
        make_pseudo_labels(tmp_path, tmp_path, BASE, selection=Selection(min_share=0))
    with pytest.raises(UserError, match="--criterion 'iou': known are share, salt_iou"):
        make_pseudo_labels(tmp_path, tmp_path, BASE, selection=Selection(criterion="iou"))


def test_round_names_and_set_names(tmp_path):
    files = Outputs(tmp_path).pseudo_set("unet-1-pseudo1")
    assert files.fold(2) == tmp_path / "pseudo" / "unet-1-pseudo1-cvfold2.npz"
    assert (files.manifest.name, files.summary.name) == (
        "unet-1-pseudo1.json",
        "unet-1-pseudo1.csv",
    )
    assert Outputs(tmp_path).derived_config("u-pseudo1") == tmp_path / "configs" / "u-pseudo1.json"
    assert round_run("unet-1", 0) == "unet-1" and round_run("unet-1", 2) == "unet-1-pseudo2"
    assert parse_round_run("unet-1-pseudo2") == ("unet-1", 2)
    assert parse_round_run("unet-1") == ("unet-1", 0)
    assert parse_round_run("unet-1-pseudo0") == ("unet-1-pseudo0", 0)
    assert set_name("unet-1", None) == ("unet-1", "unet-1-pseudo1", 1)
    assert set_name("unet-1-pseudo1-ensemble", None) == ("unet-1-pseudo1", "unet-1-pseudo2", 2)
    assert set_name("unet-1", 3)[1:] == ("unet-1-pseudo3", 3)
    with pytest.raises(UserError, match="--round 1: unet-1-pseudo1 is round 1"):
        set_name("unet-1-pseudo1", 1)


def test_a_config_with_a_set_has_its_own_run_name():
    config = config_for("fake-%s", 1)
    assert base_run(config) == BASE
    pseudo = dataclasses.replace(config, data=DataConfig("other-3-pseudo2"))
    assert base_run(pseudo) == "fake-1-pseudo2"


@pytest.mark.parametrize("name", ["nonsense", "x-pseudo0", "../x-pseudo1", "a/b-pseudo1"])
def test_config_refuses_a_name_that_is_no_set(name):
    with pytest.raises(UserError, match=r"^key 'data.pseudo_labels' must name a pseudo-label set"):
        resolve_config({"data": {"pseudo_labels": name}})


def test_config_refuses_a_set_without_cross_validation():
    with pytest.raises(UserError, match=r"^key 'data.pseudo_labels' does not apply: needs cross"):
        resolve_config({"crossvalidation": {"folds": 1}, "data": {"pseudo_labels": "x-pseudo1"}})
    assert resolve_config({"crossvalidation": {"folds": 1}, "data": {"pseudo_labels": ""}})


@pytest.fixture
def source(tmp_path) -> dict:
    """Round 0 of fake-1, 3 folds (image i validates in fold i % 3), with hand-made test
    probabilities: in fold k's file, test image i is confident iff (i + k) % 2 == 0."""
    data = write_data(tmp_path / "data", n_train=12, n_test=6)
    config = config_for("fake-%s", 1, folds=3)
    outputs = tmp_path / "outputs"
    for fold in range(3):
        run = write_fold(outputs, config, fold, data)
        probs = np.full((6, 101, 101), 0.05, dtype=np.float16)
        probs[:, :50] = 0.9  # salt on the top half
        for i in range(6):
            if (i + fold) % 2:
                probs[i, :, :20] = 0.5  # unsure in 20 of 101 columns: share 0.80
        meta = {"run": run, "split": "test", "fold": fold, "threshold": 0.5}
        save_predictions(
            Outputs(outputs).run(run).predictions("test"), data["test_ids"], probs, meta
        )
    data_folder = tmp_path / "data"
    return {
        "data": data,
        "outputs": outputs,
        "config": config,
        "root": tmp_path,
        "data_folder": data_folder,
    }


def test_each_fold_takes_its_own_models_confident_images(source):
    manifest = make_pseudo_labels(source["outputs"], source["data_folder"], BASE)
    outputs, test_ids = Outputs(source["outputs"]), source["data"]["test_ids"]
    assert manifest["folds"] == [0, 1, 2] and manifest["selected"] == {"0": 3, "1": 3, "2": 3}
    for fold in range(3):
        arrays = load_fold(
            outputs, "fake-1-pseudo1", fold, ("ids", "masks", "probs", "excluded_ids")
        )
        expected = [test_ids[i] for i in range(6) if (i + fold) % 2 == 0]
        assert arrays["ids"].tolist() == expected
        assert arrays["probs"].dtype == np.float16 and arrays["probs"].shape == (3, 101, 101)
        assert arrays["masks"].sum(axis=(1, 2)).tolist() == [50 * 101] * 3  # 0.9 > 0.5 only
        train_ids = source["data"]["train_ids"]
        assert arrays["excluded_ids"].tolist() == sorted(train_ids[fold::3])


def test_the_recorded_set_round_trips(source):
    made = make_pseudo_labels(
        source["outputs"],
        source["data_folder"],
        f"{BASE}-ensemble",
        selection=Selection(min_share=0.8),
    )
    files = Outputs(source["outputs"]).pseudo_set("fake-1-pseudo1")
    manifest = json.loads(files.manifest.read_text())
    assert manifest == made
    assert (manifest["set"], manifest["round"], manifest["source"]) == ("fake-1-pseudo1", 1, BASE)
    assert manifest["source_runs"] == [f"{BASE}-cvfold{k}" for k in range(3)]
    assert (manifest["min_share"], manifest["threshold"], manifest["threshold_from"]) == (
        0.8,
        0.5,
        "default",
    )
    summary = files.summary.read_text().splitlines()
    assert summary[0].startswith("fold,source_run,test_images,selected,selected_fraction,empty_")
    assert summary[1].startswith("0,fake-1-cvfold0,6,6,1.0,0,")
    assert (
        make_pseudo_labels(
            source["outputs"], source["data_folder"], BASE, selection=Selection(min_share=0.8)
        )
        == made
    )
    with pytest.raises(UserError, match="exists, made with min_share 0.8 \\(not 0.95\\)"):
        make_pseudo_labels(source["outputs"], source["data_folder"], BASE)
    salt_iou = Selection(min_share=0.8, criterion="salt_iou")
    with pytest.raises(UserError, match="made with criterion 'share' \\(not 'salt_iou'\\)"):
        make_pseudo_labels(source["outputs"], source["data_folder"], BASE, selection=salt_iou)


def test_a_set_recorded_without_a_criterion_was_made_by_share(source):
    made = make_pseudo_labels(source["outputs"], source["data_folder"], BASE)
    manifest = Outputs(source["outputs"]).pseudo_set("fake-1-pseudo1").manifest
    manifest.write_text(json.dumps({k: v for k, v in made.items() if k != "criterion"}))
    assert make_pseudo_labels(source["outputs"], source["data_folder"], BASE)["folds"] == [0, 1, 2]


def test_the_ensemble_threshold_and_min_area_binarise_the_masks(source):
    summary = Outputs(source["outputs"]).ensemble(BASE).summary
    summary.write_text(json.dumps({"threshold": 0.95, "min_area": 10}))
    manifest = make_pseudo_labels(source["outputs"], source["data_folder"], BASE)
    assert (manifest["threshold"], manifest["min_area"]) == (0.95, 10)
    masks = load_fold(Outputs(source["outputs"]), "fake-1-pseudo1", 0, ("masks",))["masks"]
    assert masks.sum() == 0  # no probability above 0.95


def test_the_selection_is_scored_on_the_folds_own_validation_images(tmp_path):
    """Fold 0 validates images 0, 2, 4, 6 (image i in fold i % 2; 0 and 6 empty, 2 and 4 salt):
    0 and 6 sure and right, 2 unsure (0.5 everywhere: predicted empty), 4 sure and inverted. The
    selection keeps 0, 4, 6 (3 of 4), scoring (1 + 0 + 1) / 3; the rest (image 2) scores 0."""
    data = write_data(tmp_path / "data", n_train=8, n_test=2)
    truth = data["masks"].astype(np.float32)
    probs = 0.05 + 0.9 * truth
    probs[2], probs[4] = 0.5, 0.95 - 0.9 * truth[4]
    config = config_for("v-%s", 1, folds=2)
    for fold in range(2):
        write_fold(tmp_path / "out", config, fold, data, probs=probs.astype(np.float16))
    make_pseudo_labels(tmp_path / "out", tmp_path / "data", "v-1", selection=Selection())
    rows = pd.read_csv(Outputs(tmp_path / "out").pseudo_set("v-1-pseudo1").summary)
    assert rows.loc[0, "valid_selected_fraction"] == 0.75
    assert rows.loc[0, "valid_selected_score"] == pytest.approx(2 / 3)
    assert rows.loc[0, "valid_rest_score"] == 0.0


def test_a_set_grows_with_folds_its_source_trains_later(source, capsys):
    outputs = Outputs(source["outputs"])
    late = outputs.run(f"{BASE}-cvfold2").predictions("test")
    late.rename(late.with_suffix(".later"))  # fold 2 not trained yet
    assert make_pseudo_labels(source["outputs"], source["data_folder"], BASE)["folds"] == [0, 1]
    first = outputs.pseudo_set("fake-1-pseudo1").fold(0).read_bytes()
    late.with_suffix(".later").rename(late)
    grown = make_pseudo_labels(source["outputs"], source["data_folder"], BASE)
    assert grown["folds"] == [0, 1, 2] and grown["selected"] == {"0": 3, "1": 3, "2": 3}
    assert outputs.pseudo_set("fake-1-pseudo1").fold(0).read_bytes() == first
    assert len(outputs.pseudo_set("fake-1-pseudo1").summary.read_text().splitlines()) == 4
    capsys.readouterr()
    assert make_pseudo_labels(source["outputs"], source["data_folder"], BASE) == grown
    assert "made already" in capsys.readouterr().out


def test_no_confident_image_makes_an_empty_fold(source):
    manifest = make_pseudo_labels(
        source["outputs"], source["data_folder"], BASE, selection=Selection(0.01, 0.99, 1.0)
    )
    assert manifest["selected"] == {"0": 0, "1": 0, "2": 0}
    masks = load_fold(Outputs(source["outputs"]), "fake-1-pseudo1", 1, ("masks",))["masks"]
    assert masks.shape == (0, 101, 101)


def test_a_seed_copy_makes_its_own_seeds_set_before_training(source):
    from tgssalt.seeds import ensure_pseudo_labels, seed_config

    plain = dataclasses.replace(source["config"], data=DataConfig("fake-1-pseudo1"))
    assert seed_config(plain, 2).data.pseudo_labels == "fake-seed2-1-pseudo1"
    ensure_pseudo_labels(
        plain, [0, 2], source["data_folder"], source["outputs"]
    )  # the set is missing: made
    assert load_fold(Outputs(source["outputs"]), "fake-1-pseudo1", 2, ("ids",))["ids"].size == 3


def test_training_images_read_the_sets_test_images(source):
    make_pseudo_labels(source["outputs"], source["data_folder"], BASE)
    config = dataclasses.replace(source["config"], data=DataConfig("fake-1-pseudo1"))
    images = training_images(config, Outputs(source["outputs"]), 1, source["root"] / "data", "r")
    test_ids = source["data"]["test_ids"]
    assert images.ids.tolist() == [test_ids[1], test_ids[3], test_ids[5]]
    first = np.asarray(Image.open(source["root"] / "data/test/images" / f"{test_ids[1]}.png"))
    np.testing.assert_array_equal(images.images[0, ..., 0], first)
    assert images.masks.shape == (3, 101, 101)
    plain = training_images(source["config"], Outputs(source["outputs"]), 1, Path("."), "r")
    assert plain is None


def test_fold_arrays_put_pseudo_images_in_the_training_part_only():
    config = config_for(size=101)
    labelled = np.arange(1, 7, dtype=np.uint8)[:, None, None, None] * np.ones(
        (1, 101, 101, 1), np.uint8
    )
    data = Dataset(np.array(list("abcdef")), labelled, np.zeros((6, 101, 101), np.uint8))
    pseudo_images = np.full((2, 101, 101, 1), 200, np.uint8)
    pseudo = PseudoImages(np.array(["p", "q"]), pseudo_images, np.ones((2, 101, 101), np.uint8))
    split = (np.array([0, 2, 3, 5]), np.array([1, 4]))
    (x, y), (vx, vy) = tgssalt.fold_training.fold_arrays(config, data, split, pseudo)
    assert np.rint(x[:, 0, 0, 0] * 255).tolist() == [1, 3, 4, 6, 200, 200]
    assert y[:, 0, 0, 0].tolist() == [0, 0, 0, 0, 1, 1]
    assert np.rint(vx[:, 0, 0, 0] * 255).tolist() == [2, 5] and vy.max() == 0
    (x0, _), (vx0, _) = tgssalt.fold_training.fold_arrays(config, data, split, None)
    assert len(x0) == 4 and np.array_equal(vx0, vx)


def test_small_salt_repeats_repeat_coverage_class_1_in_the_training_part_only():
    """Salt on 1 and on 1,020 pixels of 10,201 (<= 10%) is class 1; 1,021 pixels and an empty
    mask are not: only images 1 and 3 come back 3 times, and validation is untouched."""
    masks = np.zeros((6, 101, 101), np.uint8)
    masks[1, 0, 0] = 1
    masks[3].flat[:1020] = masks[4].flat[:1021] = masks[5].flat[:1] = 1
    images = np.arange(1, 7, dtype=np.uint8)[:, None, None, None] * np.ones((1, 101, 101, 1))
    data = Dataset(np.array(list("abcdef")), images.astype(np.uint8), masks)
    config = dataclasses.replace(config_for(size=101), data=DataConfig(small_salt_repeats=3))
    split = (np.array([0, 1, 2, 3, 4]), np.array([5]))
    (x, y), (vx, _) = tgssalt.fold_training.fold_arrays(config, data, split, None)
    assert np.rint(x[:, 0, 0, 0] * 255).tolist() == [1, 2, 3, 4, 5, 2, 2, 4, 4]
    assert y.sum(axis=(1, 2, 3)).tolist() == [0, 1, 0, 1020, 1021, 1, 1, 1020, 1020]
    assert np.rint(vx[:, 0, 0, 0] * 255).tolist() == [6]


def test_a_missing_set_is_one_line_naming_the_key_and_the_file(source):
    config = dataclasses.replace(source["config"], data=DataConfig("fake-1-pseudo1"))
    outputs = Outputs(source["outputs"])
    with pytest.raises(UserError) as caught:
        check_for_training(config, outputs, 0, False, np.array([]))
    message = str(caught.value)
    assert message.startswith("key 'data.pseudo_labels': no pseudo-label set 'fake-1-pseudo1'")
    assert str(outputs.pseudo_set("fake-1-pseudo1").manifest) in message
    assert "code/pseudo_label.py --run fake-1)" in message and "\n" not in message


def test_train_fold_with_a_missing_set_fails_before_writing(tmp_path):
    write_data(tmp_path / "data", n_train=12, n_test=3)
    config = dataclasses.replace(config_for(folds=3), data=DataConfig("fake-1-pseudo1"))
    with pytest.raises(UserError, match="^key 'data.pseudo_labels': no pseudo-label set"):
        tgssalt.fold_training.train_fold(config, 0, tmp_path / "data", tmp_path / "outputs")
    assert not (tmp_path / "outputs").exists()


def test_training_refuses_a_set_that_saw_its_validation_images(source):
    make_pseudo_labels(
        source["outputs"], source["data_folder"], BASE, selection=Selection(min_share=0.8)
    )
    outputs, train_ids = Outputs(source["outputs"]), source["data"]["train_ids"]
    config = dataclasses.replace(source["config"], data=DataConfig("fake-1-pseudo1"))
    check_for_training(config, outputs, 1, False, train_ids[1::3])  # the same split: fine
    with pytest.raises(UserError, match="trained on 1 of this fold's validation images"):
        check_for_training(config, outputs, 1, False, train_ids[[1, 4, 2]])
    with pytest.raises(UserError, match="made per cross-validation fold"):
        check_for_training(config, outputs, None, True, train_ids[:2])
    outputs.run(f"{BASE}-cvfold2").predictions("test").unlink()
    make_pseudo_labels(
        source["outputs"], source["data_folder"], BASE, round_=2, selection=Selection(min_share=0.8)
    )
    with pytest.raises(UserError, match="set 'fake-1-pseudo2' has no fold 2"):
        check_for_training(
            dataclasses.replace(config, data=DataConfig("fake-1-pseudo2")), outputs, 2, False, []
        )


def test_pseudo_label_script_reports_a_run_without_folds(tmp_path, capsys):
    import pseudo_label

    with pytest.raises(SystemExit) as caught:
        run_cli(pseudo_label.main, ["--run", "none-1", "--outputs-folder", str(tmp_path)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no fold test predictions of none-1" in err
    assert err.count("\n") == 1


def test_pseudo_label_script_passes_the_criterion(source):
    import pseudo_label

    folders = [
        "--outputs-folder",
        str(source["outputs"]),
        "--data-folder",
        str(source["data_folder"]),
    ]
    argv = ["--run", BASE, "--criterion", "salt_iou", "--confidence", "0.3", "0.7", *folders]
    pseudo_label.main([*argv, "--min-share", "0.9"])
    manifest = json.loads(
        Outputs(source["outputs"]).pseudo_set("fake-1-pseudo1").manifest.read_text()
    )
    assert (manifest["criterion"], manifest["low"], manifest["min_share"]) == ("salt_iou", 0.3, 0.9)
    # every image has salt on its top half; unsure columns (0.5) sit inside the band: IoU 0.8
    assert manifest["selected"] == {"0": 3, "1": 3, "2": 3}


CHAIN = {
    "name": "fake-%s",
    "version": 1,
    "crossvalidation": {"folds": 3},
    "model": {"start_filters": 2, "depth": 2, "dropout": 0.0},
}


def _without_mlflow(monkeypatch) -> None:
    """The ensemble's summary JSON without its MLflow logging (tested elsewhere; importing
    MLflow is most of this file's time)."""

    @contextlib.contextmanager
    def no_run(*args):
        yield types.SimpleNamespace(log_artifact=lambda path: None)

    def write_summary(metrics, path):
        Path(path).write_text(json.dumps(metrics))

    monkeypatch.setattr(tgssalt.tracking, "mlflow_run", no_run)
    monkeypatch.setattr(tgssalt.tracking, "log_fold_metrics", write_summary)


def test_the_chain_of_rounds_resumes_and_skips_finished_steps(tmp_path, monkeypatch):
    """Round 0, the set, round 1 with it; a rerun trains nothing; round 2 adds only itself."""
    data = write_data(tmp_path / "data", n_train=12, n_test=6)
    config_file = tmp_path / "fake.json"
    config_file.write_text(json.dumps(CHAIN))
    outputs, trained = tmp_path / "outputs", []

    def fake_train_fold(config, fold, data_folder, outputs_folder):
        trained.append((base_run(config), config.data.pseudo_labels, fold))
        write_fold(Path(outputs_folder), config, fold, data)
        return {}

    monkeypatch.setattr(tgssalt.fold_training, "train_fold", fake_train_fold)
    monkeypatch.setattr(tgssalt.cross_validation, "visible_gpus", lambda: [])
    _without_mlflow(monkeypatch)
    chain = (config_file, 1, tmp_path / "data", outputs, Selection(min_share=0.5))
    summary = pseudo_rounds.run_rounds(*chain)
    assert trained == [(BASE, "", k) for k in range(3)] + [
        ("fake-1-pseudo1", "fake-1-pseudo1", k) for k in range(3)
    ]
    assert summary["run"] == "fake-1-pseudo1-ensemble" and summary["complete"]
    layout = Outputs(outputs)
    round_data = json.loads(layout.derived_config("fake-1-pseudo1").read_text())["data"]
    assert round_data["pseudo_labels"] == "fake-1-pseudo1"
    assert layout.pseudo_set("fake-1-pseudo1").manifest.is_file()
    trained.clear()
    pseudo_rounds.run_rounds(*chain)
    assert trained == []
    pseudo_rounds.run_rounds(config_file, 2, *chain[2:])
    assert trained == [("fake-1-pseudo2", "fake-1-pseudo2", k) for k in range(3)]
    manifest = json.loads(layout.pseudo_set("fake-1-pseudo2").manifest.read_text())
    assert manifest["source"] == "fake-1-pseudo1" and manifest["threshold_from"].endswith(".json")


SMOKE = {
    "name": "smoke-%s",
    "version": 1,
    "crossvalidation": {"folds": 2},
    "input": {"size": 32},
    "model": {"start_filters": 4, "depth": 2, "dropout": 0.0},
    "stage1": {"epochs": 1, "batch_size": 8},
    "stage2": {"epochs": 1, "batch_size": 8},
}


@pytest.mark.slow
def test_smoke_two_rounds_of_real_training(tmp_path):
    """run_rounds.py on synthetic data: round 0 (2 folds), the set, round 1; then a rerun that
    skips everything. The band 0.5..0.5 makes every test image confident."""
    import os
    import subprocess
    import sys

    from tgssalt.synthetic import generate_dataset

    generate_dataset(tmp_path / "data", n_train=40, n_test=12, seed=3)
    (tmp_path / "smoke.json").write_text(json.dumps(SMOKE))
    command = [
        sys.executable,
        str(CODE / "run_rounds.py"),
        "--config-file",
        str(tmp_path / "smoke.json"),
    ]
    command += ["--rounds", "1", "--confidence", "0.5", "0.5", "--min-share", "0.5", "--jobs", "1"]
    command += ["--data-folder", str(tmp_path / "data"), "--outputs-folder", str(tmp_path / "out")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "smoke-1-pseudo1-cvfold0: + 12 pseudo-labelled test images" in first.stdout
    layout = Outputs(tmp_path / "out")
    for fold in range(2):
        round0 = json.loads(layout.run(f"smoke-1-cvfold{fold}").metrics.read_text())
        round1 = json.loads(layout.run(f"smoke-1-pseudo1-cvfold{fold}").metrics.read_text())
        assert (round0["pseudo_label_images"], round1["pseudo_label_images"]) == (0, 12)
        assert round1["validation_images"] == round0["validation_images"] == 20
    assert layout.ensemble("smoke-1-pseudo1").submission.is_file()
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("are complete") == 2 and "made already" in again.stdout
