"""Tune `metrics.binarize`'s rule out of fold: threshold, min_area and hysteresis's peak.

One grid (`metrics.peak_area_table`) scores every (threshold, peak gap, min_area) on the
out-of-fold images; gap 0 is the one-threshold rule. The best one-threshold rule is always found;
the best hysteresis rule replaces it only when that is worth it on images it was not tuned on:
over `HALVES_SPLITS` random halves, both rules are tuned on one half and scored on the other, and
hysteresis is kept when its mean held-out gain is positive. Its bigger search flatters it in
sample (more rules to choose from), which the halves do not.
"""

import numpy as np

from .hysteresis import PEAK_GAPS
from .metrics import binarize, peak_area_table

HALVES_SPLITS = 20
HALVES_SEED = 0


def apply_rule(probs: np.ndarray, rule: dict) -> np.ndarray:
    """`binarize` with a tuned rule's `threshold`, `min_area` and `peak_threshold` (an ensemble
    or blend summary, a pseudo-label set's settings)."""
    return binarize(probs, rule["threshold"], rule["min_area"], rule["peak_threshold"])


def best_rule(scores: np.ndarray) -> tuple[int, int, int]:
    """The best (threshold, gap, min_area) index of mean scores (T, G, A); ties go to the smallest
    gap (the one threshold first), then the smallest min_area, then the smallest threshold."""
    near = np.argwhere(scores >= scores.max() - 1e-12)
    t, g, a = near[np.lexsort((near[:, 0], near[:, 2], near[:, 1]))[0]]
    return int(t), int(g), int(a)


def held_out_gains(table: np.ndarray, splits: int = HALVES_SPLITS) -> np.ndarray:
    """Per random half-split: hysteresis's score minus the one threshold's on the held-out half,
    each rule tuned on the other half. `table` is `peak_area_table`'s (N, T, G, A)."""
    rng = np.random.default_rng(HALVES_SEED)
    n_images = len(table)
    halves = np.stack([rng.permutation(n_images) % 2 for _ in range(splits)]).astype(np.float64)
    flat = table.reshape(n_images, -1)
    tune_sums = (halves @ flat).reshape(splits, *table.shape[1:])
    held_sums = flat.sum(axis=0).reshape(table.shape[1:]) - tune_sums
    gains = []
    for tune, held, half in zip(tune_sums, held_sums, halves, strict=True):
        peaked, single = best_rule(tune), best_rule(tune[:, :1])
        gains.append((held[peaked] - held[single]) / (n_images - half.sum()))
    return np.array(gains)


def tune_rule(truth, probs, thresholds, min_areas, gaps=PEAK_GAPS) -> tuple[dict, np.ndarray]:
    """The chosen rule (`threshold`, `min_area`, `peak_threshold`: None for the one threshold) and
    its `oof_score`, with both candidates' scores and the held-out gain; and the one-threshold
    score grid (thresholds, min_areas) for the figure."""
    table = peak_area_table(truth, probs, thresholds, gaps, min_areas)
    means = table.mean(axis=0)
    t1, _, a1 = best_rule(means[:, :1])
    tp, gp, ap = best_rule(means)
    gains = held_out_gains(table)
    kept = bool(gains.mean() > 0 and gaps[gp] > 0)
    t, g, a = (tp, gp, ap) if kept else (t1, 0, a1)
    peak = float(thresholds[tp] + gaps[gp])
    return {
        "threshold": float(thresholds[t]),
        "min_area": int(min_areas[a]),
        "peak_threshold": peak if kept else None,
        "oof_score": float(means[t, g, a]),
        "hysteresis_kept": kept,
        "oof_score_one_threshold": float(means[t1, 0, a1]),
        "threshold_one_threshold": float(thresholds[t1]),
        "min_area_one_threshold": int(min_areas[a1]),
        "oof_score_hysteresis": float(means[tp, gp, ap]),
        "threshold_hysteresis": float(thresholds[tp]),
        "peak_threshold_hysteresis": peak,
        "min_area_hysteresis": int(min_areas[ap]),
        "held_out_gain_hysteresis": float(gains.mean()),
        "held_out_gain_std_hysteresis": float(gains.std()),
        "peak_gaps": [float(gap) for gap in gaps],
    }, means[:, 0, :]
