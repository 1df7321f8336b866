"""Hysteresis thresholding: the masks, the scored grid, and its out-of-fold choice."""

import numpy as np
import pytest
from fakes import masks_for, peaked_probs
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold
from tgssalt.hysteresis import PEAK_GAPS, keep_peaked
from tgssalt.metrics import (
    binarize,
    image_scores,
    peak_area_table,
    threshold_area_table,
)
from tgssalt.postprocess import held_out_gains, tune_rule


def _smooth_probs(n: int, size: int, seed: int) -> np.ndarray:
    """Blurred noise rescaled to [0, 1]: bodies of every size and peak."""
    rng = np.random.default_rng(seed)
    probs = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 1.5, 1.5))
    return (probs - probs.min()) / (probs.max() - probs.min())


def test_faint_bodies_go_sure_ones_stay_whole():
    probs = np.zeros((2, 6, 6), np.float32)
    probs[0, 0, 0:2] = 0.6  # faint: dropped
    probs[0, 3:6, 3:6] = 0.55  # faint rim ...
    probs[0, 4, 4] = 0.95  # ... around a sure core: kept whole
    probs[0, 2, 2] = 0.95  # sure, but touches the core only diagonally: its own body
    probs[1, 4, 4] = 0.6  # faint, under image 0's core: bodies never cross images
    masks = binarize(probs, 0.5, peak=0.7)
    expected = np.zeros_like(masks)
    expected[0, 3:6, 3:6] = 1
    expected[0, 2, 2] = 1
    np.testing.assert_array_equal(masks, expected)
    assert binarize(probs, 0.5, min_area=11, peak=0.7).sum() == 0  # min area after hysteresis
    np.testing.assert_array_equal(binarize(probs, 0.5, peak=0.5), binarize(probs, 0.5))


@pytest.mark.parametrize(("low", "high"), [(0.4, 0.6), (0.5, 0.52), (0.3, 0.8), (0.5, 0.5)])
def test_keep_peaked_is_scikit_images_hysteresis_per_image(low, high):
    probs = _smooth_probs(6, 30, seed=1)
    expected = np.stack([apply_hysteresis_threshold(p, low, high) for p in probs])
    np.testing.assert_array_equal(keep_peaked(probs, low, high), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_peak_table_scores_each_rule_as_binarize_does(dtype):
    probs = _smooth_probs(24, 20, seed=2).astype(dtype)
    truth = (_smooth_probs(24, 20, seed=3) > 0.55).astype(np.uint8)
    truth[:8] = 0  # empty truths: scored 1 only for empty predictions
    thresholds, areas = np.linspace(0.3, 0.7, 5), np.array([0, 5, 20])
    table = peak_area_table(truth, probs, thresholds, PEAK_GAPS, areas)
    one_threshold = threshold_area_table(truth, probs, thresholds, areas)
    np.testing.assert_array_equal(table[:, :, 0], one_threshold)
    for i, t in enumerate(thresholds):
        for j, gap in enumerate(PEAK_GAPS):
            for k, area in enumerate(areas):
                masks = binarize(probs, t, area, peak=t + gap)
                np.testing.assert_array_equal(table[:, i, j, k], image_scores(truth, masks))
    assert (table[:, :, 1:] != table[:, :, :1]).any()  # the peaks do change some scores


def test_hysteresis_is_kept_where_one_threshold_cannot_be_exact():
    truth = masks_for(30, seed=4)
    thresholds, areas = np.linspace(0.2, 0.8, 31), np.arange(0, 301, 10)
    rule, grid = tune_rule(truth, peaked_probs(truth), thresholds, areas)
    assert rule["hysteresis_kept"] and rule["oof_score"] == pytest.approx(1.0)
    assert rule["threshold"] < 0.6 < rule["peak_threshold"] < 0.9
    assert rule["oof_score_one_threshold"] < 0.9 and rule["held_out_gain_hysteresis"] > 0.05
    assert grid.shape == (31, 31) and grid.max() == pytest.approx(rule["oof_score_one_threshold"])


def test_one_threshold_is_kept_when_hysteresis_adds_nothing():
    truth = masks_for(30, seed=5)
    rng = np.random.default_rng(5)
    probs = np.clip(0.2 + 0.6 * truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    thresholds, areas = np.linspace(0.2, 0.8, 31), np.arange(0, 301, 10)
    rule, _ = tune_rule(truth, probs, thresholds, areas)
    table = peak_area_table(truth, probs, thresholds, PEAK_GAPS, areas)
    assert not held_out_gains(table).any()  # ties go to the one threshold: no gain anywhere
    assert not rule["hysteresis_kept"] and rule["peak_threshold"] is None
    one = (rule["threshold_one_threshold"], rule["min_area_one_threshold"])
    assert (rule["threshold"], rule["min_area"]) == one and rule["oof_score"] == 1.0
