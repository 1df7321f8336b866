"""The competition metric: mean over images of the precision averaged over IoU thresholds.

For one object per image, Kaggle's precision at threshold t is 1 if IoU(truth, prediction) > t
and 0 otherwise; an image whose truth is empty scores 1 only if the prediction is empty too.
The image score is the mean over `IOU_THRESHOLDS` (0.50 ... 0.95) and the dataset score the mean
over images. The numpy functions here are the reference; `keras_metrics.competition_score_ops`
is the same computation in `keras.ops`, a training metric under any Keras backend.
`binarize` is the post-processing every prediction goes through (a threshold, optionally
hysteresis's second `peak` threshold, then a minimum salt area); `threshold_area_table` and
`peak_area_table` score a whole grid of its parameters per image, for `postprocess.tune_rule`
and the blend's weight search.

"IoU > t" is evaluated exactly, as `100 * intersection > percent(t) * union` on pixel counts:
the thresholds are whole percents, and comparing float ratios would let rounding decide the
cases where IoU equals a threshold (for example 3/4 against 0.75).
"""

import numpy as np

from .competition import IOU_THRESHOLDS
from .hysteresis import above, as_batch, keep_peaked, peak_counts

# The IoU thresholds as whole percents (50, 55, ..., 95), for exact integer comparisons.
THRESHOLD_PERCENTS = np.rint(IOU_THRESHOLDS * 100).astype(np.int64)
# The post-processing search grids: (low, high, count) of the probability thresholds and
# (first, last, step) of the minimum salt areas in pixels, both ends included.
THRESHOLD_GRID = (0.2, 0.8, 31)
MIN_AREA_GRID = (0, 300, 10)


def threshold_grid(low: float, high: float, count: int) -> np.ndarray:
    """The probability thresholds searched: `count` evenly spaced from `low` to `high`."""
    return np.linspace(low, high, int(count))


def min_area_grid(first: int, last: int, step: int) -> np.ndarray:
    """The minimum salt areas searched, in pixels: `first` to `last` inclusive by `step`."""
    return np.arange(first, last + 1, step)


DEFAULT_SEARCH_THRESHOLDS = threshold_grid(*THRESHOLD_GRID)
MIN_AREAS = min_area_grid(*MIN_AREA_GRID)


def _as_flat_batch(masks: np.ndarray, name: str) -> np.ndarray:
    """Return a (N, H, W) or (N, H, W, 1) batch as an (N, H*W) array; reject other shapes."""
    masks = as_batch(masks, name)
    return masks.reshape(masks.shape[0], -1)


def _scores_from_counts(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Image scores from integer intersection and union pixel counts of any (same) shape."""
    intersection = np.asarray(intersection, dtype=np.int64)[..., None]
    union = np.asarray(union, dtype=np.int64)[..., None]
    hits = 100 * intersection > THRESHOLD_PERCENTS * union
    scores = hits.mean(axis=-1)
    # union == 0 means truth and prediction are both empty: a perfect image.
    return np.where(union[..., 0] == 0, 1.0, scores)


def image_scores(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-image competition scores (N,) of binary predictions against binary truth masks.

    Both are batches (N, H, W) or (N, H, W, 1); any nonzero value counts as salt.
    """
    truth_flat = _as_flat_batch(truth, "truth") != 0
    pred_flat = _as_flat_batch(pred, "pred") != 0
    if truth_flat.shape != pred_flat.shape:
        raise ValueError(f"truth {truth_flat.shape} and pred {pred_flat.shape} differ in shape")
    intersection = np.count_nonzero(truth_flat & pred_flat, axis=1)
    union = np.count_nonzero(truth_flat | pred_flat, axis=1)
    return _scores_from_counts(intersection, union)


def competition_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """The dataset score: the mean of `image_scores` over a non-empty batch."""
    scores = image_scores(truth, pred)
    if scores.size == 0:
        raise ValueError("cannot score an empty batch")
    return float(scores.mean())


def threshold_search(
    truth: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray = DEFAULT_SEARCH_THRESHOLDS,
) -> tuple[float, float, np.ndarray]:
    """Find the probability threshold that maximises the dataset score.

    A pixel is predicted salt when `probs > threshold`. Every pixel is binned once against the
    sorted thresholds and the per-image counts at all thresholds come from cumulative sums, so
    the cost is one pass over the pixels rather than one per threshold.
    Returns (best threshold, its score, the score at every threshold in the given order);
    ties go to the first threshold in the given order.
    """
    truth_flat = _as_flat_batch(truth, "truth") != 0
    probs_flat = _as_flat_batch(probs, "probs")
    if truth_flat.shape != probs_flat.shape or truth_flat.shape[0] == 0:
        raise ValueError(f"truth {truth_flat.shape} and probs {probs_flat.shape} must match, N > 0")
    thresholds = np.asarray(thresholds, dtype=np.float64).ravel()
    order = np.argsort(thresholds, kind="stable")
    predicted, hit = _counts_above(truth_flat, probs_flat, thresholds[order])
    truth_counts = truth_flat.sum(axis=1)[:, None]
    sorted_scores = _scores_from_counts(hit, truth_counts + predicted - hit).mean(axis=0)
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    best = int(np.argmax(scores))
    return float(thresholds[best]), float(scores[best]), scores


def binarize(
    probs: np.ndarray, threshold: float, min_area: int = 0, peak: float | None = None
) -> np.ndarray:
    """Binary masks (N, H, W) uint8 from probabilities: `probs > threshold`, then the min-area rule.

    With a `peak` above the threshold, hysteresis first drops each salt body whose probabilities
    never exceed `peak` (`hysteresis.keep_peaked`). The rule empties every mask with fewer than
    `min_area` salt pixels: a small false positive on an image without salt costs that whole
    image's score. The thresholds are compared in the probabilities' dtype, as
    `threshold_area_table` and `peak_area_table` do, so all agree pixel for pixel.
    """
    probs = np.asarray(probs)
    if peak is not None and peak > threshold:
        masks = keep_peaked(probs, threshold, peak).reshape(probs.shape)
    else:
        masks = above(probs, threshold)
    area = masks.sum(axis=tuple(range(1, masks.ndim)))  # also for no images at all
    masks[area < min_area] = False
    return masks.astype(np.uint8)


def threshold_area_table(
    truth: np.ndarray,
    probs: np.ndarray,
    sorted_thresholds: np.ndarray,
    sorted_min_areas: np.ndarray,
    chunk: int = 500,
) -> np.ndarray:
    """Every image's score (N, thresholds, min_areas) under each (threshold, min_area) pair of
    `binarize`, both grids ascending: per image, not averaged, so that a search can average it
    over any subset of the images (the blend's cross-check does).

    Per image and threshold the predicted and correct pixel counts come from one pass over the
    pixels (as in `threshold_search`, `chunk` images at a time to bound memory); the min-area rule
    then only swaps an image's score for its empty-prediction score (1 if its truth is empty,
    else 0), so every pair costs O(images).
    """
    truth_flat = _as_flat_batch(truth, "truth") != 0
    probs_flat = _as_flat_batch(probs, "probs")
    if truth_flat.shape != probs_flat.shape or truth_flat.shape[0] == 0:
        raise ValueError(f"truth {truth_flat.shape} and probs {probs_flat.shape} must match, N > 0")
    thresholds = np.asarray(sorted_thresholds, dtype=np.float64).ravel()
    min_areas = np.asarray(sorted_min_areas, dtype=np.int64).ravel()
    predicted, hit = _chunked_counts(truth_flat, probs_flat, thresholds, chunk)
    return _area_rule(predicted, hit, truth_flat.sum(axis=1), min_areas)


def peak_area_table(
    truth: np.ndarray,
    probs: np.ndarray,
    sorted_thresholds: np.ndarray,
    gaps: np.ndarray,
    sorted_min_areas: np.ndarray,
) -> np.ndarray:
    """Every image's score (N, thresholds, gaps, min_areas) under each rule
    `binarize(probs, threshold, min_area, peak=threshold + gap)`: hysteresis and the min-area
    rule together. Gap 0 is the one threshold, equal to `threshold_area_table`."""
    truth_batch, probs_batch = as_batch(truth, "truth"), as_batch(probs, "probs")
    if truth_batch.shape != probs_batch.shape or truth_batch.shape[0] == 0:
        shapes = f"truth {truth_batch.shape} and probs {probs_batch.shape}"
        raise ValueError(f"{shapes} must match, N > 0")
    thresholds = np.asarray(sorted_thresholds, dtype=np.float64).ravel()
    min_areas = np.asarray(sorted_min_areas, dtype=np.int64).ravel()
    predicted, hit = peak_counts(truth_batch, probs_batch, thresholds, np.asarray(gaps).ravel())
    truth_counts = np.count_nonzero(truth_batch.reshape(len(truth_batch), -1), axis=1)
    return _area_rule(predicted, hit, truth_counts, min_areas)


def _area_rule(predicted, hit, truth_counts, min_areas) -> np.ndarray:
    """Image scores (N, ..., A) from per-rule pixel counts (N, ...): the min-area rule swaps a
    mask smaller than each min_area for the empty mask (1 if the truth is empty, else 0)."""
    truth_counts = np.asarray(truth_counts).reshape(-1, *[1] * (predicted.ndim - 1))
    kept = _scores_from_counts(hit, truth_counts + predicted - hit)[..., None]
    emptied = (truth_counts == 0).astype(np.float64)[..., None]
    small = predicted[..., None] < min_areas
    return np.where(small, emptied, kept)


def _chunked_counts(
    truth_flat: np.ndarray, probs_flat: np.ndarray, sorted_thresholds: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """`_counts_above` over `chunk` images at a time, so its per-pixel arrays stay small."""
    counts = [
        _counts_above(truth_flat[k : k + chunk], probs_flat[k : k + chunk], sorted_thresholds)
        for k in range(0, len(truth_flat), chunk)
    ]
    return np.concatenate([c[0] for c in counts]), np.concatenate([c[1] for c in counts])


def _counts_above(
    truth_flat: np.ndarray, probs_flat: np.ndarray, sorted_thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per image and threshold: pixels with prob > threshold, and how many of those are salt.

    Returns two (N, T) integer arrays. Thresholds are compared in the probabilities' dtype when
    that is floating, so the result matches `probs > threshold` elementwise.
    """
    n_images, n_thresholds = probs_flat.shape[0], sorted_thresholds.size
    if np.issubdtype(probs_flat.dtype, np.floating):
        sorted_thresholds = sorted_thresholds.astype(probs_flat.dtype)
    # bins[i, p] = how many thresholds lie strictly below the pixel's probability.
    bins = np.searchsorted(sorted_thresholds, probs_flat, side="left")
    bins += (np.arange(n_images) * (n_thresholds + 1))[:, None]
    size = n_images * (n_thresholds + 1)
    hist = np.bincount(bins.ravel(), minlength=size).reshape(n_images, -1)
    salt = np.bincount(bins[truth_flat], minlength=size).reshape(n_images, -1)
    # Pixels above threshold j are those in bins j+1 .. T: a reversed cumulative sum.
    predicted = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    hit = np.cumsum(salt[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return predicted, hit


def coverage_class(masks: np.ndarray) -> np.ndarray:
    """Coverage class 0..10 of each mask: ceil(10 * salt fraction), computed exactly in integers.

    Used to stratify folds so every fold sees the same mix of empty, small and large salt bodies.
    """
    flat = _as_flat_batch(masks, "masks") != 0
    salt = flat.sum(axis=1, dtype=np.int64)
    n_pixels = flat.shape[1]
    return -((-10 * salt) // n_pixels)


def coverage_report(truth: np.ndarray, pred: np.ndarray) -> list[dict]:
    """Where a score is lost: per coverage class of the truth (0 = empty, c = salt over
    (c - 1) x 10% up to c x 10% of the image), its images, how many of them are predicted
    empty, their mean score and the score it loses overall (its images' 1 - score summed, over
    all images: the losses add up to 1 - `competition_score`). Small salt bodies lose the most
    on TGS; `predicted_empty` tells a missed body from a poorly outlined one."""
    scores = image_scores(truth, pred)
    classes = coverage_class(truth)
    empty = ~np.any(_as_flat_batch(pred, "pred") != 0, axis=1)
    rows = []
    for c in np.unique(classes):
        in_class = classes == c
        part = scores[in_class]
        rows.append(
            {
                "coverage_class": int(c),
                "images": int(part.size),
                "predicted_empty": int(np.count_nonzero(empty[in_class])),
                "score": float(part.mean()),
                "loss": float((1.0 - part).sum() / scores.size),
            }
        )
    return rows
