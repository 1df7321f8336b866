"""The numpy input pipeline: preprocessing, augmentation, a `keras.utils.PyDataset`."""

import math

import cv2
import keras
import numpy as np

from .config import AugmentationConfig, Config
from .sizes import to_model_size


def preprocess(images: np.ndarray, config: Config) -> np.ndarray:
    """uint8 (N, 101, 101, C) -> float32 (N, size, size, C) for the model, scaled to [0, 1],
    resized or padded as `input.mode` says (`sizes.to_model_size`)."""
    x = images.astype(np.float32)
    if config.input.normalize:
        x /= 255.0
    return to_model_size(x, config.input)


def mask_targets(masks: np.ndarray, config: Config) -> np.ndarray:
    """uint8 (N, 101, 101) 0/1 masks -> float32 (N, size, size, 1) training targets, brought to
    the model's size as the images are (nearest-neighbour when resized: they stay 0/1)."""
    return to_model_size(masks[..., None].astype(np.float32), config.input, order=0)


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled training batches: random horizontal flips, then the geometric augmentation
    (random pad-and-crop, random affine shift/scale/rotation), then brightness/contrast jitter.

    Horizontal flips keep seismic sections physically plausible (vertical flips would not:
    depth has a direction). Geometric transforms move image and mask together. Every batch is
    a pure function of (seed, epoch, batch index), not of the order in which batches are asked
    for, so prefetching, worker processes and a resumed run (which sets `epoch`) all see the
    batches an uninterrupted run would. The geometric draws come from their own stream, so
    turning them on leaves the flips and jitter of every batch as they were.
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
        x, y = geometric(x, y, self.aug, np.random.default_rng([self.seed, self.epoch, index, 1]))
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


def geometric(x: np.ndarray, y: np.ndarray, aug: AugmentationConfig, rng: np.random.Generator):
    """Random pad-and-crop, then a random affine transform, each applied to images and masks
    alike (the same draws; a single-channel warp is several times faster in OpenCV than one of
    stacked channels). Affine-warped masks, interpolated as the images are, are thresholded at
    0.5 so they stay 0/1. Returns (x, y) unchanged when both are off."""
    if aug.pad_crop:
        corners = rng.integers(0, 2 * aug.pad_crop + 1, (len(x), 2))
        x, y = pad_and_crop(x, aug.pad_crop, corners), pad_and_crop(y, aug.pad_crop, corners)
    if affine_on(aug):
        matrices = affine_matrices(aug, x.shape[1], len(x), rng)
        x, y = warp_affine(x, matrices), warp_affine(y, matrices)
        y = (y > 0.5).astype(y.dtype)
    return x, y


def affine_on(aug: AugmentationConfig) -> bool:
    return aug.shift > 0 or aug.scale > 0 or aug.rotate > 0


def pad_and_crop(images: np.ndarray, pad: int, corners: np.ndarray) -> np.ndarray:
    """Reflect-pad (N, S, S, C) by `pad` on each side, then take each image's S x S window at
    its (row, column) in `corners` (0..2 pad): a whole-pixel translation, reflected borders.
    OpenCV's `copyMakeBorder` (numpy's "reflect") pads 5x faster than `numpy.pad`."""
    size, out = images.shape[1], np.empty_like(images)
    for image, (row, col), cropped in zip(images, corners, out, strict=True):
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        cropped[:] = padded[row : row + size, col : col + size].reshape(cropped.shape)
    return out


def affine_matrices(aug: AugmentationConfig, size: int, n: int, rng: np.random.Generator):
    """(n, 2, 3) forward affine matrices (OpenCV's (x, y) convention): rotation by up to
    `rotate` degrees and zoom by up to `scale` about the centre, then a shift of up to
    `shift` x `size` pixels in each direction; all drawn uniformly."""
    angle = rng.uniform(-aug.rotate, aug.rotate, n)
    zoom = 1 + rng.uniform(-aug.scale, aug.scale, n)
    shift = rng.uniform(-aug.shift, aug.shift, (n, 2)) * size
    centre = ((size - 1) / 2, (size - 1) / 2)
    matrices = np.stack(
        [cv2.getRotationMatrix2D(centre, a, z) for a, z in zip(angle, zoom, strict=True)]
    )
    matrices[:, :, 2] += shift
    return matrices


def warp_affine(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Each (S, S, C) image of `images` warped by its 2 x 3 matrix, bilinear, with reflected
    borders (OpenCV's `warpAffine`: the fastest of the implementations
    `code/benchmarks/pipeline_speed.py` compares)."""
    size = (images.shape[2], images.shape[1])
    out = np.empty_like(images)
    for image, matrix, warped in zip(images, matrices, out, strict=True):
        flags = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_REFLECT_101}
        cv2.warpAffine(image, matrix, size, dst=warped, **flags)  # in place
    return out
