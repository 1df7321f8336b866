"""The numpy input pipeline: preprocessing, augmentation, a `keras.utils.PyDataset`."""

import math

import keras
import numpy as np
from skimage.transform import resize

from .competition import IMAGE_SIZE
from .config import AugmentationConfig, Config


def preprocess(images: np.ndarray, config: Config) -> np.ndarray:
    """uint8 (N, 101, 101, C) -> float32 (N, size, size, C) for the model, scaled to [0, 1]."""
    x = images.astype(np.float32)
    if config.input.normalize:
        x /= 255.0
    return resize_batch(x, config.input.size)


def resize_batch(x: np.ndarray, size: int, order: int = 1) -> np.ndarray:
    """Resize (N, H, W, C) to (N, size, size, C); a no-op when already that size."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    shape = (size, size, x.shape[-1])
    return np.stack([resize(i, shape, order=order, preserve_range=True) for i in x]).astype(x.dtype)


def mask_targets(masks: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, 101, 101) 0/1 masks -> float32 (N, size, size, 1) training targets."""
    return resize_batch(masks[..., None].astype(np.float32), size, order=0)


def to_original_size(probs: np.ndarray) -> np.ndarray:
    """Model probabilities (N, s, s[, 1]) -> (N, 101, 101) for scoring and submission."""
    probs = probs if probs.ndim == 4 else probs[..., None]
    return resize_batch(probs, IMAGE_SIZE)[..., 0]


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled training batches with random horizontal flips and brightness/contrast jitter.

    Horizontal flips keep seismic sections physically plausible (vertical flips would not:
    depth has a direction). Every batch is a pure function of (seed, epoch, batch index), not of
    the order in which batches are asked for, so prefetching, worker processes and a resumed
    run (which sets `epoch`) all see the batches an uninterrupted run would.
    """

    def __init__(
        self, x, y, batch_size: int, augmentation: AugmentationConfig, seed: int, **kwargs
    ):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.aug = x, y, batch_size, augmentation
        self.seed = seed
        self.set_epoch(0)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        x, y = self.x[idx], self.y[idx]  # fancy indexing copies: safe to modify in place
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.aug.hflip:
            flip = rng.random(len(idx)) < 0.5
            x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, ::-1]
        return _jitter(x, rng, self.aug.brightness, self.aug.contrast), y

    def set_epoch(self, epoch: int) -> None:
        """Move to `epoch`'s shuffle (Keras calls `on_epoch_end` once more when a fit starts)."""
        self.epoch = epoch
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


def _jitter(x: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float):
    """Random per-image brightness shift and contrast scale (no-ops when both are 0); modifies
    `x`, the batch's own copy, in place."""
    if brightness == 0 and contrast == 0:
        return x
    n = len(x)
    scale = 1 + rng.uniform(-contrast, contrast, (n, 1, 1, 1)).astype(np.float32)
    shift = rng.uniform(-brightness, brightness, (n, 1, 1, 1)).astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x -= mean  # in place, in the order of (x - mean) * scale + mean + shift: the same floats
    x *= scale
    x += mean
    x += shift
    return x
