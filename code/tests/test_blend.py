"""Blends of several runs: weights tuned out of fold, the cross-check guard, refusing members
that do not match. Fold outputs are written directly (`fakes.write_fold`), never trained.

The two members' validation probabilities are hand-made: right (0.95 on salt, 0.05 elsewhere)
except member a inverted on images `WRONG_A` and member b unsure (0.3 everywhere) on `WRONG_B`,
disjoint sets of salt images. Alone, each scores 0 on its wrong images; blended with a's weight
w, both kinds of image separate at some threshold exactly when 0.1 <= w <= 0.4 (a's inverted
images need w < 0.5, b's unsure ones w > 0), and the tie-break towards equal weights picks 0.4.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import config_for, peaked_probs, write_data, write_fold
from tgssalt.blend import (
    candidate_weights,
    choose,
    ensemble_test_probs,
    load_members,
    parse_weights,
    run_blend,
    same_split,
    search_weights,
    simplex_grid,
)
from tgssalt.errors import UserError
from tgssalt.layout import Outputs, blend_run
from tgssalt.metrics import binarize
from tgssalt.predictions import load_predictions, save_predictions
from tgssalt.rle import rle_decode
from tgssalt.submission import validate_submission

CODE = Path(__file__).resolve().parents[1]
WRONG_A = [1, 2, 4, 5]  # salt images (every third image is empty)
WRONG_B = [7, 8, 10, 11, 13, 14]
N_TRAIN = 24


def member_probs(masks: np.ndarray, wrong: list[int], how: str) -> np.ndarray:
    """Right probabilities, except on images `wrong`: inverted, or unsure (0.3)."""
    probs = 0.05 + 0.9 * masks.astype(np.float32)
    probs[wrong] = 1 - probs[wrong] if how == "inverted" else 0.3
    return probs


def write_member(outputs: Path, data: dict, name: str, probs, folds: int = 3) -> str:
    """Every fold of a run `name`-1 with validation probabilities `probs` (and test ones with
    noise of their own); its base name."""
    config = config_for(name=f"{name}-%s", folds=folds)
    for fold in range(folds):
        write_fold(outputs, config, fold, data, seed=100 * ord(name[0]), probs=probs)
    return f"{name}-1"


def _two_members(root: Path) -> tuple[Path, Path, dict]:
    data = write_data(root / "data", n_train=N_TRAIN)
    outputs = root / "outputs"
    write_member(outputs, data, "a", member_probs(data["masks"], WRONG_A, "inverted"))
    write_member(outputs, data, "b", member_probs(data["masks"], WRONG_B, "unsure"))
    return root / "data", outputs, data


@pytest.fixture(scope="module")
def blended(tmp_path_factory):
    root = tmp_path_factory.mktemp("blend")
    data_folder, outputs, data = _two_members(root)
    summary = run_blend(outputs, ["a-1", "b-1"], data_folder)
    return outputs, data, summary


def test_tuned_weights_beat_each_member_and_equal_weights(blended):
    _, _, summary = blended
    members = {row["run"]: row for row in summary["members"]}
    assert members["a-1"]["oof_score"] == pytest.approx(1 - len(WRONG_A) / N_TRAIN)
    assert members["b-1"]["oof_score"] == pytest.approx(1 - len(WRONG_B) / N_TRAIN)
    # Equal weights leave a's inverted images flat at 0.5: lost, as for a alone.
    assert summary["oof_score_equal_weights"] == pytest.approx(1 - len(WRONG_A) / N_TRAIN)
    assert summary["weights"] == pytest.approx([0.4, 0.6])
    assert summary["weights_rule"] == "auto" and summary["weights_kept"] == "tuned"
    assert summary["oof_score"] == pytest.approx(1.0)
    assert (summary["threshold"], summary["min_area"]) == (pytest.approx(0.42), 0)
    assert summary["cross_checked_oof_score_tuned_weights"] == pytest.approx(1.0)
    assert summary["cross_checked_oof_score_equal_weights"] < 1
    assert summary["same_split"] and summary["weight_candidates"] == 11
    coverage = summary["oof_by_coverage_class"]  # at the tuned weights: nothing lost
    assert sum(r["images"] for r in coverage) == N_TRAIN and sum(r["loss"] for r in coverage) == 0


def test_outputs_are_the_weighted_fold_means(blended):
    outputs, data, summary = blended
    paths = Outputs(outputs).blend("a-1+b-1-blend")
    df = validate_submission(paths.submission, expected_ids=data["test_ids"])
    expected = np.zeros((len(data["test_ids"]), 101, 101), np.float32)
    for base, weight in (("a-1", 0.4), ("b-1", 0.6)):
        for fold in range(3):
            _, probs, _ = load_predictions(
                outputs / "predictions" / f"{base}-cvfold{fold}-test.npz"
            )
            expected += weight / 3 * probs.astype(np.float32)
    masks = np.stack([rle_decode(r) for r in df["rle_mask"]])
    np.testing.assert_array_equal(masks, binarize(expected, summary["threshold"]))
    saved = json.loads(paths.summary.read_text())
    assert saved["weights"] == summary["weights"] and saved["member1_oof_score"] < 1
    assert paths.figure.is_file() and (outputs / "mlflow.db").is_file()
    ids, probs, again = ensemble_test_probs(outputs, "a-1+b-1-blend")
    assert ids.tolist() == data["test_ids"].tolist() and again["threshold"] == saved["threshold"]
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_the_chosen_weights_get_hysteresis_when_it_helps(tmp_path):
    data = write_data(tmp_path / "data", n_train=N_TRAIN)
    outputs = tmp_path / "outputs"
    write_member(outputs, data, "a", peaked_probs(data["masks"], rim=2))
    write_member(outputs, data, "b", peaked_probs(data["masks"], rim=4))
    summary = run_blend(outputs, ["a-1", "b-1"], tmp_path / "data", options={"weights": "equal"})
    assert summary["hysteresis_kept"] and summary["oof_score"] == pytest.approx(1.0)
    assert summary["oof_score_one_threshold"] == pytest.approx(summary["oof_score_equal_weights"])
    assert summary["oof_score_one_threshold"] < 0.9
    assert summary["threshold"] < summary["peak_threshold"]
    ids, probs, saved = ensemble_test_probs(outputs, "a-1+b-1-blend")
    rule = (saved["threshold"], saved["min_area"], saved["peak_threshold"])
    df = validate_submission(saved["submission"], expected_ids=ids)
    masks = np.stack([rle_decode(r) for r in df["rle_mask"]])
    np.testing.assert_array_equal(masks, binarize(probs, *rule))


def _search(masks, probs_a, probs_b, rule):
    search = search_weights(
        masks, [probs_a, probs_b], rule, 0.1, np.linspace(0.2, 0.8, 31), np.array([0, 50])
    )
    return choose(search, rule)


def test_auto_keeps_equal_weights_when_tuning_does_not_hold_out_of_sample():
    """b is better than a on one image only: tuned weights favour b, but on the halves
    cross-check the half without that image cannot tell, so auto keeps equal weights."""
    masks = (np.arange(8)[:, None, None] * np.ones((1, 101, 101)) > 0).astype(np.uint8)
    masks[:, :70] = 0  # images 1..7 a third salt, image 0 empty
    probs_b = member_probs(masks, [], "")
    probs_a = member_probs(masks, [3], "inverted")
    auto, tuned = (
        _search(masks, probs_a, probs_b, "auto"),
        _search(masks, probs_a, probs_b, "tuned"),
    )
    assert tuned["weights"] == pytest.approx([0.4, 0.6]) and tuned["oof_score"] == 1
    assert auto["oof_score_tuned_weights"] == 1 and auto["oof_score_equal_weights"] == 7 / 8
    assert auto["cross_checked_oof_score_tuned_weights"] == pytest.approx(7 / 8)
    assert auto["weights"] == [0.5, 0.5] and auto["weights_kept"] == "equal"
    given = _search(masks, probs_a, probs_b, np.array([0.2, 0.8]))
    assert given["weights"] == pytest.approx([0.2, 0.8]) and given["weights_kept"] == "given"


def test_weight_grid():
    assert simplex_grid(2, 0.25).tolist() == [
        [0, 1],
        [0.25, 0.75],
        [0.5, 0.5],
        [0.75, 0.25],
        [1, 0],
    ]
    assert len(simplex_grid(3, 0.1)) == 66 and np.allclose(simplex_grid(3, 0.1).sum(axis=1), 1)
    assert candidate_weights(3, "equal", 0.1).shape == (4, 3)  # each alone, then equal
    with pytest.raises(UserError, match="--weight-step 0.3: must divide 1"):
        simplex_grid(2, 0.3)
    with pytest.raises(UserError, match="1001 weight vectors for 5 members"):
        simplex_grid(5, 0.1)


def test_blend_names():
    assert blend_run(["a-1", "b-2"]) == "a-1+b-2-blend"
    assert blend_run(["a-1", "b-2"], "mine") == "mine-blend"
    long = blend_run([f"run-number-{k}" for k in range(20)])
    assert long.startswith("run-number-0+19-more-") and long.endswith("-blend") and len(long) < 60
    with pytest.raises(UserError, match="without /"):
        blend_run(["a"], "x/y")


def test_members_split_differently_are_blended(tmp_path):
    data = write_data(tmp_path / "data", n_train=N_TRAIN)
    outputs = tmp_path / "outputs"
    write_member(outputs, data, "a", member_probs(data["masks"], WRONG_A, "inverted"))
    write_member(outputs, data, "b", member_probs(data["masks"], WRONG_B, "unsure"), folds=4)
    members = load_members(outputs, ["a-1", "b-1"])
    assert [len(m.folds) for m in members] == [3, 4] and not same_split(members)


@pytest.mark.parametrize("what", ["labelled", "test"])
def test_refuses_a_member_with_other_ids(tmp_path, what):
    data = write_data(tmp_path / "data", n_train=N_TRAIN)
    outputs = tmp_path / "outputs"
    write_member(outputs, data, "a", member_probs(data["masks"], [], ""))
    other = dict(data)
    if what == "labelled":
        other.update(train_ids=data["train_ids"][:21], masks=data["masks"][:21])
    write_member(outputs, other, "b", member_probs(other["masks"], [], ""))
    if what == "test":
        path = outputs / "predictions" / "b-1-cvfold1-test.npz"
        ids, probs, meta = load_predictions(path)
        ids = np.array([*ids[:-1], "someone-else"])
        for fold in range(3):
            path = outputs / "predictions" / f"b-1-cvfold{fold}-test.npz"
            save_predictions(
                path, ids, load_predictions(path)[1], meta | {"run": f"b-1-cvfold{fold}"}
            )
    with pytest.raises(UserError, match=f"b-1's folds have .* {what}.* a-1's .* same data") as err:
        run_blend(outputs, ["a-1", "b-1"], tmp_path / "data")
    assert "\n" not in str(err.value)
    assert not (outputs / "submissions").exists()


def test_a_blend_of_some_folds_is_named_by_them(tmp_path):
    data_folder, outputs, _ = _two_members(tmp_path)
    options = {"weights": "equal", "name": "ab"}
    summary = run_blend(outputs, ["a-1", "b-1"], data_folder, only=[1, 0], options=options)
    assert summary["run"] == "ab-folds0_1-blend"
    assert [row["folds_used"] for row in summary["members"]] == [[0, 1], [0, 1]]
    assert Outputs(outputs).blend("ab-folds0_1-blend").submission.is_file()
    assert not Outputs(outputs).blend("ab-blend").summary.exists()


def test_refuses_one_or_repeated_members(tmp_path):
    with pytest.raises(UserError, match="two or more different runs, got a-1, a-1"):
        load_members(tmp_path, ["a-1", "a-1"])
    with pytest.raises(UserError, match="--weights '0.5': give auto, tuned, equal, or 2 weights"):
        parse_weights("0.5", 2)
    assert parse_weights("1,3", 2).tolist() == [0.25, 0.75] and parse_weights(None, 2) == "auto"


def _cli():
    spec = importlib.util.spec_from_file_location("ensemble_cli", CODE / "ensemble.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_cli_blends_several_runs_and_refuses_blend_flags_for_one(monkeypatch):
    calls = []
    monkeypatch.setattr("tgssalt.blend.run_blend", lambda *a: calls.append(a))
    cli = _cli()
    cli.main(["--run", "a-1", "b-1", "--weights", "equal", "--name", "ab", "--folds", "0,1"])
    _, bases, _, _, _, only, options = calls[0]
    assert bases == ["a-1", "b-1"] and only == [0, 1]
    assert options == {"weights": "equal", "name": "ab", "weight_step": 0.1}
    with pytest.raises(UserError, match="--weights, --weight-step and --name apply to a blend"):
        cli.main(["--run", "a-1", "--weights", "equal"])


def test_test_probs_of_a_single_run_ensemble(blended):
    outputs, data, _ = blended
    summary = Outputs(outputs).ensemble("b-1").summary
    summary.write_text(json.dumps({"folds_used": [0, 2], "threshold": 0.4, "min_area": 0}))
    ids, probs, again = ensemble_test_probs(outputs, "b-1")
    folds = [load_predictions(outputs / "predictions" / f"b-1-cvfold{k}-test.npz") for k in (0, 2)]
    expected = (folds[0][1].astype(np.float32) + folds[1][1].astype(np.float32)) / 2
    assert ids.tolist() == data["test_ids"].tolist() and again["threshold"] == 0.4
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    with pytest.raises(UserError, match="a-1-ensemble.json: missing; run code/ensemble.py"):
        ensemble_test_probs(outputs, "a-1")
