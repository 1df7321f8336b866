"""Hysteresis thresholding: keep a faint salt body only when part of it is sure.

One threshold keeps every pixel with `probs > threshold`. Hysteresis (Canny's edge linking, as in
`skimage.filters.apply_hysteresis_threshold`) keeps each connected body of `probs > threshold`
whose highest probability exceeds a second, higher `peak` threshold: a faint rim survives beside a
sure core, a faint speck alone does not, and on TGS a speck on an empty image costs that image's
whole score. Bodies are 4-connected within each image, as in scikit-image; with
`peak <= threshold` every body is kept, which is the one threshold.

`peak_counts` gives, for a whole grid of (threshold, peak) rules at once, each image's predicted
and correct salt pixels from per-body counts, so `metrics.peak_area_table` scores the grid
without building a mask per rule.
"""

import numpy as np
from scipy import ndimage

# Peaks searched, as gaps above the threshold; gap 0 is the one-threshold rule.
PEAK_GAPS = np.round(np.arange(0.0, 0.161, 0.02), 2)
# 4-connected bodies within each image of an (N, H, W) batch, never across images.
IN_PLANE = np.pad(ndimage.generate_binary_structure(2, 1)[None], ((1, 1), (0, 0), (0, 0)))


def as_batch(array: np.ndarray, name: str) -> np.ndarray:
    """An (N, H, W) view of an (N, H, W) or (N, H, W, 1) batch."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise ValueError(f"{name} must be a batch (N, H, W) or (N, H, W, 1), got {array.shape}")
    return array


def above(probs: np.ndarray, threshold: float) -> np.ndarray:
    """`probs > threshold`, compared in the probabilities' dtype (as every search here does)."""
    if np.issubdtype(probs.dtype, np.floating):
        threshold = np.asarray(threshold, dtype=probs.dtype)
    return probs > threshold


def label_bodies(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """The salt bodies of `probs > threshold` in an (N, H, W) batch, labelled 1..count."""
    return ndimage.label(above(probs, threshold), structure=IN_PLANE)


def keep_peaked(probs: np.ndarray, threshold: float, peak: float) -> np.ndarray:
    """Boolean masks (N, H, W): the bodies of `probs > threshold` whose maximum exceeds `peak`."""
    probs = as_batch(probs, "probs")
    bodies, count = label_bodies(probs, threshold)
    if count == 0 or peak <= threshold:
        return bodies > 0
    keep = above(body_peaks(probs, bodies, count), peak)
    return np.concatenate([[False], keep])[bodies]


def peak_counts(
    truth: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, gaps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per image, threshold and gap: the salt pixels `keep_peaked(probs, t, t + gap)` predicts,
    and how many of them are truly salt. Two (N, T, G) integer arrays.

    Each threshold labels the bodies once; a body's area, correct pixels and peak then decide
    every gap: an image's counts are the sums over its kept bodies.
    """
    truth, probs = as_batch(truth, "truth") != 0, as_batch(probs, "probs")
    n_images = len(probs)
    predicted = np.zeros((n_images, len(thresholds), len(gaps)), np.int64)
    hit = np.zeros_like(predicted)
    for t, threshold in enumerate(thresholds):
        bodies, count = label_bodies(probs, threshold)
        if count == 0:
            continue
        area = np.bincount(bodies.ravel(), minlength=count + 1)[1:]
        correct = np.bincount(bodies[truth], minlength=count + 1)[1:]
        peaks = body_peaks(probs, bodies, count)
        image = _image_of_bodies(bodies, count)
        for g, gap in enumerate(gaps):
            kept = above(peaks, threshold + gap) if gap > 0 else np.ones(count, bool)
            predicted[:, t, g] = np.bincount(image[kept], area[kept], n_images)
            hit[:, t, g] = np.bincount(image[kept], correct[kept], n_images)
    return predicted, hit


def body_peaks(probs: np.ndarray, bodies: np.ndarray, count: int) -> np.ndarray:
    """The highest probability of each body 1..count, in the probabilities' dtype
    (`np.maximum.at`: one pass, much faster than `ndimage.maximum`). Zero starts every body's
    maximum: its pixels all exceed a threshold in (0, 1)."""
    peaks = np.zeros(count + 1, probs.dtype)
    np.maximum.at(peaks, bodies.ravel(), probs.ravel())
    return peaks[1:]


def _image_of_bodies(bodies: np.ndarray, count: int) -> np.ndarray:
    """The image index of each body 1..count (a body never spans two images)."""
    image = np.zeros(count + 1, np.int64)
    for n, labels in enumerate(bodies):
        image[labels[labels > 0]] = n
    return image[1:]
