"""The one place that converts between the competition's 101 px and the model's input size.

`input.mode` "resize" interpolates 101 px images to `input.size` and probabilities back;
"pad" pads them, centred, to `input.size` (`input.pad_mode`: reflected, edge-repeated or zero
borders) and crops the model's output back to 101 px without interpolating. `to_model_size` and
`to_original_size` are that pair, for training, scoring, submission and prediction alike;
`margins` is the centring rule they share with the model's own zero padding to its encoder's
stride (`models.blocks.pad` and `crop`).
"""

import numpy as np
from skimage.transform import resize

from .competition import IMAGE_SIZE
from .config import InputConfig

# `input.pad_mode` -> numpy.pad's mode
NUMPY_PAD_MODES = {"reflect": "reflect", "edge": "edge", "zero": "constant"}


def margins(size: int, padded: int) -> tuple:
    """((top, bottom), (left, right)) that take a square `size` map to `padded`, split around
    the centre (the extra pixel of an odd difference goes after)."""
    before = (padded - size) // 2
    return ((before, padded - size - before),) * 2


def to_model_size(x: np.ndarray, spec: InputConfig, order: int = 1) -> np.ndarray:
    """(N, 101, 101, C) -> (N, size, size, C) as `spec` (`config.input`) says: resized with
    spline `order` (1 for images, 0 for masks, so they stay binary), or padded."""
    if spec.mode == "pad":
        return pad_batch(x, spec.size, spec.pad_mode)
    return resize_batch(x, spec.size, order)


def to_original_size(probs: np.ndarray, spec: InputConfig) -> np.ndarray:
    """Model probabilities (N, s, s[, 1]) -> (N, 101, 101): resized back, or the padding
    cropped off (undoes `to_model_size`)."""
    probs = probs if probs.ndim == 4 else probs[..., None]
    if spec.mode == "pad":
        return np.ascontiguousarray(crop_batch(probs, IMAGE_SIZE)[..., 0])
    return resize_batch(probs, IMAGE_SIZE)[..., 0]


def pad_batch(x: np.ndarray, size: int, pad_mode: str) -> np.ndarray:
    """Pad (N, H, W, C) centred to (N, size, size, C) with `pad_mode` borders
    (`NUMPY_PAD_MODES`)."""
    (top, bottom), (left, right) = margins(x.shape[1], size)
    widths = ((0, 0), (top, bottom), (left, right), (0, 0))
    return np.pad(x, widths, mode=NUMPY_PAD_MODES[pad_mode])


def crop_batch(x: np.ndarray, size: int) -> np.ndarray:
    """The centred (N, size, size, C) window of (N, H, W, C): undoes `pad_batch`."""
    (top, bottom), (left, right) = margins(size, x.shape[1])
    return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right]


def resize_batch(x: np.ndarray, size: int, order: int = 1) -> np.ndarray:
    """Resize (N, H, W, C) to (N, size, size, C); a no-op when already that size."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    shape = (size, size, x.shape[-1])
    return np.stack([resize(i, shape, order=order, preserve_range=True) for i in x]).astype(x.dtype)
