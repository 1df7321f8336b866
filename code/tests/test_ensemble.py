"""The fold ensemble: the joint threshold/min-area search, the outputs, and refusing bad folds.

Fold outputs are written directly (`fakes.write_fold`), never trained.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import BLOB, config_for, masks_for, peaked_probs, write_data, write_fold
from tgssalt.ensemble import run_ensemble
from tgssalt.errors import UserError
from tgssalt.layout import Outputs
from tgssalt.metrics import binarize, competition_score, threshold_area_table
from tgssalt.postprocess import tune_rule
from tgssalt.predictions import load_predictions, save_predictions
from tgssalt.rle import rle_decode
from tgssalt.submission import validate_submission

CODE = Path(__file__).resolve().parents[1]
BASE = "fake-1"


def test_binarize_empties_small_masks():
    probs = np.zeros((3, 10, 10), np.float32)
    probs[0, :2, :2] = 0.9  # 4 pixels
    probs[1, :5, :5] = 0.9  # 25 pixels
    probs[2, :5, :5] = 0.4  # below the threshold
    masks = binarize(probs, 0.5, min_area=5)
    assert masks.dtype == np.uint8
    assert masks.reshape(3, -1).sum(axis=1).tolist() == [0, 25, 0]
    assert binarize(probs, 0.5).reshape(3, -1).sum(axis=1).tolist() == [4, 25, 0]
    assert binarize(probs[:0], 0.5, min_area=5).shape == (0, 10, 10)  # no images at all


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_search_matches_brute_force(dtype):
    rng = np.random.default_rng(3)
    truth = masks_for(12, 5)[:, ::4, ::4]  # 26x26
    probs = np.clip(0.3 + 0.4 * truth + rng.normal(0, 0.2, truth.shape), 0, 1).astype(dtype)
    thresholds, areas = np.linspace(0.3, 0.7, 9), np.array([0, 3, 10, 30, 60])
    grid = threshold_area_table(truth, probs, thresholds, areas, chunk=5).mean(axis=0)
    brute = np.array(
        [[competition_score(truth, binarize(probs, ti, ai)) for ai in areas] for ti in thresholds]
    )
    np.testing.assert_allclose(grid, brute)
    rule, one_threshold_grid = tune_rule(truth, probs, thresholds, areas)
    np.testing.assert_allclose(one_threshold_grid, brute)
    t, a = list(thresholds).index(rule["threshold_one_threshold"]), rule["min_area_one_threshold"]
    assert rule["oof_score_one_threshold"] == pytest.approx(brute.max())
    assert brute[t, list(areas).index(a)] == pytest.approx(brute.max())


def _folds(root: Path, n_folds: int = 3, **config_kwargs) -> tuple[Path, Path, dict]:
    """A data folder and an outputs folder holding every fold's fake outputs."""
    data = write_data(root / "data")
    outputs = root / "outputs"
    config = config_for(folds=n_folds, **config_kwargs)
    for fold in range(n_folds):
        write_fold(outputs, config, fold, data)
    return root / "data", outputs, data


@pytest.fixture(scope="module")
def ensembled(tmp_path_factory):
    """Three fake folds, the last with its test ids shuffled, ensembled once for the module."""
    root = tmp_path_factory.mktemp("ensemble")
    data_folder, outputs, data = _folds(root)
    path = outputs / "predictions" / f"{BASE}-cvfold2-test.npz"
    ids, probs, meta = load_predictions(path)
    order = np.random.default_rng(0).permutation(len(ids))
    save_predictions(path, ids[order], probs[order], meta)
    summary = run_ensemble(outputs, BASE, data_folder)
    return outputs, data, summary


def test_min_area_removes_false_positive_blobs(ensembled):
    _, _, summary = ensembled
    assert BLOB * BLOB < summary["min_area"] <= 400  # above the blob, at most the smallest mask
    assert summary["oof_score"] == pytest.approx(1.0)
    assert summary["oof_score_threshold_only"] < summary["oof_score"] - 0.2
    assert summary["folds_used"] == [0, 1, 2] and summary["complete"]
    assert summary["oof_images"] == 24 and summary["test_images"] == 6
    coverage = summary["oof_by_coverage_class"]  # at the chosen rule: nothing lost
    assert sum(r["images"] for r in coverage) == 24 and sum(r["loss"] for r in coverage) == 0


def test_submission_is_the_postprocessed_fold_mean(ensembled):
    outputs, data, summary = ensembled
    paths = Outputs(outputs).ensemble(BASE)
    df = validate_submission(paths.submission, expected_ids=data["test_ids"])
    assert df["id"].tolist() == data["test_ids"].tolist()  # in sample_submission order
    masks = np.stack([rle_decode(r) for r in df["rle_mask"]])
    np.testing.assert_array_equal(masks, masks_for(len(df), 99))  # blobs gone, shuffle undone
    saved = json.loads(paths.summary.read_text())
    assert saved["threshold"] == summary["threshold"] and saved["min_area"] == summary["min_area"]
    assert paths.figure.is_file() and (outputs / "mlflow.db").is_file()
    assert not list(outputs.rglob("*.tmp*"))


def test_hysteresis_is_kept_and_applied_where_it_helps(tmp_path):
    data = write_data(tmp_path / "data")
    outputs = tmp_path / "outputs"
    for fold in range(3):
        write_fold(outputs, config_for(), fold, data, probs=peaked_probs(data["masks"]))
    summary = run_ensemble(outputs, BASE, tmp_path / "data")
    assert summary["hysteresis_kept"] and summary["oof_score"] == pytest.approx(1.0)
    assert summary["oof_score_one_threshold"] < 0.9
    paths = Outputs(outputs).ensemble(BASE)
    saved = json.loads(paths.summary.read_text())
    assert saved["peak_threshold"] == summary["peak_threshold"] > summary["threshold"]
    total = np.zeros((len(data["test_ids"]), 101, 101), np.float32)
    for fold in range(3):
        total += load_predictions(outputs / "predictions" / f"{BASE}-cvfold{fold}-test.npz")[1]
    rule = (summary["threshold"], summary["min_area"], summary["peak_threshold"])
    df = validate_submission(paths.submission, expected_ids=data["test_ids"])
    masks = np.stack([rle_decode(r) for r in df["rle_mask"]])
    np.testing.assert_array_equal(masks, binarize(total / 3, *rule))


def _rewrite(path: Path, ids=None, meta_update=None) -> None:
    """Rewrite a prediction file with other ids or changed metadata."""
    old_ids, probs, meta = load_predictions(path)
    save_predictions(path, old_ids if ids is None else ids, probs, {**meta, **(meta_update or {})})


@pytest.mark.parametrize(
    ("key", "value"), [("version", 2), ("input_size", 128), ("folds", 4), ("name", "other-%s")]
)
def test_refuses_folds_of_another_run(tmp_path, key, value):
    data_folder, outputs, _ = _folds(tmp_path)
    _rewrite(outputs / "predictions" / f"{BASE}-cvfold1-valid.npz", meta_update={key: value})
    with pytest.raises(UserError, match=f"cvfold1-valid.npz: {key} is {value!r}.*cannot be ens"):
        run_ensemble(outputs, BASE, data_folder)


def test_refuses_mismatched_test_ids(tmp_path):
    data_folder, outputs, data = _folds(tmp_path)
    ids = data["test_ids"].copy()
    ids[0] = "someone-else"
    _rewrite(outputs / "predictions" / f"{BASE}-cvfold2-test.npz", ids=ids)
    with pytest.raises(UserError, match="cvfold2-test.npz: its 6 test ids differ"):
        run_ensemble(outputs, BASE, data_folder)


def test_refuses_validation_sets_of_another_split(tmp_path):
    data_folder, outputs, _ = _folds(tmp_path)
    first, _, _ = load_predictions(outputs / "predictions" / f"{BASE}-cvfold0-valid.npz")
    _rewrite(outputs / "predictions" / f"{BASE}-cvfold1-valid.npz", ids=first)
    with pytest.raises(UserError, match=r"cvfold1-valid.npz: .* not fold 1's .*split differently"):
        run_ensemble(outputs, BASE, data_folder)
    (outputs / "folds" / f"{BASE}.csv").unlink()
    with pytest.raises(UserError, match=rf"{BASE}.csv: missing: the folds' split"):
        run_ensemble(outputs, BASE, data_folder)


def test_refuses_test_ids_of_another_data_set(tmp_path):
    data_folder, outputs, _ = _folds(tmp_path)
    (data_folder / "sample_submission.csv").write_text("id,rle_mask\nnew1,\nnew2,\n")
    with pytest.raises(UserError, match="2 expected id.s. missing"):
        run_ensemble(outputs, BASE, data_folder)


def test_refuses_a_run_without_folds_or_a_fold_without_validation(tmp_path):
    data_folder, outputs, _ = _folds(tmp_path)
    with pytest.raises(UserError, match="no fold predictions other-1-cvfold<k>-test.npz"):
        run_ensemble(outputs, "other-1", data_folder)
    (outputs / "predictions" / f"{BASE}-cvfold1-valid.npz").unlink()
    with pytest.raises(UserError, match="cvfold1-valid.npz: missing"):
        run_ensemble(outputs, BASE, data_folder)


def test_missing_fold_is_a_warning(tmp_path, capsys):
    data_folder, outputs, data = _folds(tmp_path, n_folds=3)
    for split in ("valid", "test"):
        (outputs / "predictions" / f"{BASE}-cvfold1-{split}.npz").unlink()
    summary = run_ensemble(outputs, BASE, data_folder, min_areas=[0, 50])
    assert summary["folds_used"] == [0, 2] and not summary["complete"]
    assert summary["run"] == f"{BASE}-folds0_2-ensemble"
    assert summary["oof_images"] == 16 and summary["min_area"] == 50
    assert "fold(s) 1 missing" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(CODE / "ensemble.py"), "--run", "nothing", "--outputs-folder",
         str(tmp_path), "--data-folder", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_cli_grid_flags(tmp_path, monkeypatch):
    calls = []
    spec = importlib.util.spec_from_file_location("ensemble_cli", CODE / "ensemble.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    monkeypatch.setattr("tgssalt.ensemble.run_ensemble", lambda *a: calls.append(a))
    cli.main(["--run", "r-1", "--thresholds", "0.3", "0.5", "3", "--min-areas", "0", "20", "10"])
    _, base, _, thresholds, areas, only = calls[0]
    assert base == "r-1" and thresholds.tolist() == [0.3, 0.4, 0.5]
    assert areas.tolist() == [0, 10, 20] and only is None


def test_folds_option_selects_folds_and_refuses_absent_ones(tmp_path):
    data, outputs, _ = _folds(tmp_path)
    every = Outputs(outputs).ensemble(BASE)
    run_ensemble(outputs, BASE, data)
    before = every.summary.read_bytes(), every.submission.read_bytes()
    summary = run_ensemble(outputs, BASE, data, only=[0, 2])
    assert summary["folds_used"] == [0, 2] and not summary["complete"]
    # The fold subset is its own run: the ensemble of every fold (predict.py's rule) stays.
    assert summary["run"] == f"{BASE}-folds0_2-ensemble"
    subset = Outputs(outputs).ensemble(BASE, "-folds0_2")
    assert json.loads(subset.summary.read_text())["folds_used"] == [0, 2]
    assert subset.submission.is_file() and subset.figure.is_file()
    assert (every.summary.read_bytes(), every.submission.read_bytes()) == before
    assert run_ensemble(outputs, BASE, data, only=[2, 1, 0])["run"] == f"{BASE}-ensemble"
    with pytest.raises(UserError, match=r"fold\(s\) \[5\]"):
        run_ensemble(outputs, BASE, data, only=[0, 5])
