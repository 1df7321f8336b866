"""code/benchmarks/empty_classifier.py: features, the cut and the fold nesting on made-up images."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import empty_classifier  # noqa: E402
from empty_classifier import CLASSIFIERS, FEATURES, best_cut, compare, image_features  # noqa: E402
from fakes import config_for, write_data, write_fold  # noqa: E402
from tgssalt.layout import base_run  # noqa: E402


def square(top: int, left: int, side: int, size: int = 20) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_image_features_of_a_hand_made_mask_and_image():
    masks = np.stack([square(2, 3, 4) | square(10, 10, 2), np.zeros((20, 20), np.uint8)])
    probs = np.where(masks, 0.8, 0.1).astype(np.float32)
    images = np.zeros((2, 20, 20), np.uint8)
    images[0, :, ::2] = 255  # stripes: horizontal differences only
    row = dict(zip(FEATURES, image_features(probs, masks, images)[0], strict=True))
    assert row["peak"] == np.float32(0.8) and row["area"] == 20
    assert row["area_above_0.7"] == 20 and row["area_above_0.3"] == 20
    assert np.isclose(row["mask_confidence"], 0.8)
    assert (row["bodies"], row["rows"], row["columns"], row["top_row"]) == (2, 6, 6, 2)
    assert row["texture"] == 1.0 and row["texture_ratio"] == 0.0
    empty = dict(zip(FEATURES, image_features(probs, masks, images)[1], strict=True))
    assert (empty["bodies"], empty["rows"], empty["top_row"], empty["texture"]) == (0, 0, 20, 0)


def test_best_cut_takes_the_largest_total_gain_and_the_highest_cut_on_ties():
    probability = np.array([0.9, 0.6, 0.2])
    assert best_cut(probability, np.array([1.0, 1.0, -3.0])) == 0.55  # above 0.55: +2
    assert best_cut(probability, np.array([1.0, -1.0, 0.5])) == 0.85  # only the first: +1
    # emptying never helps: a cut above every probability, so nothing is emptied
    assert best_cut(probability, np.array([-1.0, -1.0, -1.0])) == 0.95


def made_up_oof(n: int = 96, seed: int = 0):
    """Images that all get one confident salt body; half are truly empty, and only those are
    flat (no texture): a classifier can tell them, the peak probability cannot."""
    rng = np.random.default_rng(seed)
    is_empty = np.arange(n) % 2 == 0
    truth = np.stack([np.zeros((20, 20), np.uint8) if e else square(4, 4, 8) for e in is_empty])
    probs = np.stack([np.where(square(4, 4, 8), 0.9, 0.05) for _ in range(n)]).astype(np.float32)
    images = rng.integers(0, 255, (n, 20, 20)).astype(np.uint8)
    images[is_empty] = 120
    return truth, probs, images, (np.arange(n) // 2) % 4  # each fold half empty


def test_nested_classifiers_empty_the_false_salt_a_feature_gives_away(monkeypatch):
    fewer_trees = {"boosting": lambda: CLASSIFIERS["boosting"]().set_params(max_iter=20)}
    monkeypatch.setattr(empty_classifier, "CLASSIFIERS", CLASSIFIERS | fewer_trees)
    truth, probs, images, folds = made_up_oof()
    found = compare(truth, probs, images, folds)
    assert found["rule_score"] == 0.5 and found["empty_oracle"] == 1.0
    assert found["predicted_salt"] == 96 and found["predicted_salt_truly_empty"] == 48
    assert found["peak_auc"] == 0.5  # every image has the same peak
    for name in ("logistic", "boosting"):
        assert found[name]["score"] == 1.0, name
        assert found[name]["emptied"] == found[name]["emptied_truly_empty"] == 48, name


def test_nested_classifiers_leave_the_rule_alone_when_nothing_tells_empty_images(monkeypatch):
    monkeypatch.setattr(empty_classifier, "CLASSIFIERS", {"logistic": CLASSIFIERS["logistic"]})
    truth, probs, images, folds = made_up_oof()
    images[:] = np.random.default_rng(1).integers(0, 255, images.shape)  # all textured alike
    found = compare(truth, probs, images, folds)
    # fitted on noise, a fold's classifier may empty a few images, right or wrong by chance:
    # never more than chance allows (about half right), so the score stays near the rule's
    assert abs(found["logistic"]["score"] - found["rule_score"]) <= 0.1
    assert 0.2 <= found["logistic"]["auc"] <= 0.8


def test_too_few_false_salt_images_to_learn_from_is_a_one_line_error():
    truth, probs, images, folds = made_up_oof()
    probs[2:] = np.where(truth[2:], 0.9, 0.05)  # the rule gives salt to one empty image only
    with pytest.raises(empty_classifier.UserError, match="fold 0: .* needs 3 of each kind"):
        compare(truth, probs, images, folds)


def test_the_script_reads_a_runs_folds_truth_and_images_in_one_order(tmp_path, monkeypatch, capsys):
    """Four fake folds whose empty images get a large confident false body and a flat image:
    the rule keeps every body (so scores the salt images only) and the classifier finds the
    empty ones by their images, which only works when ids, truth, images and folds line up."""
    monkeypatch.setattr(empty_classifier, "CLASSIFIERS", {"logistic": CLASSIFIERS["logistic"]})
    data = write_data(tmp_path / "data", n_train=48)
    empty = data["masks"].reshape(48, -1).max(axis=1) == 0
    for image_id in data["train_ids"][empty]:
        Image.fromarray(np.full((101, 101), 120, np.uint8)).save(
            tmp_path / "data/train/images" / f"{image_id}.png"
        )
    seen = data["masks"].copy()
    seen[empty, 30:60, 30:60] = 1
    probs = np.where(seen, 0.9, 0.05).astype(np.float16)
    config = config_for(folds=4)
    for fold in range(4):
        write_fold(tmp_path / "out", config, fold, data, probs=probs)
    empty_classifier.main(
        ["--run", base_run(config), "--data-folder", str(tmp_path / "data")]
        + ["--outputs-folder", str(tmp_path / "out")]
    )
    found = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert found["rule_score"] == round(1 - empty.mean(), 4)
    assert found["predicted_salt"] == 48 and found["predicted_salt_truly_empty"] == empty.sum()
    assert found["logistic"]["score"] == 1.0
