"""Training-batch speed of `AugmentedBatches` per augmentation setting, and of the candidate
implementations of its affine warp.

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \\
        python code/benchmarks/pipeline_speed.py [--images 2048] [--batch 32] [--repeats 5]

Part 1 times one epoch of `AugmentedBatches` over random 101 px images (uint8, preprocessed as
a fold preprocesses them, 101 px resize mode and 128 px pad mode) for several augmentation
settings, as img/s and as a ratio to flips alone measured in the same run. Part 2 warps the same
batches (image and mask, random shift/scale/rotation, reflected borders) with each candidate
library: OpenCV's `warpAffine` (what the pipeline uses; also with image and mask stacked as one
2-channel array), scipy.ndimage, scikit-image, `keras.ops.image.affine_transform` and
albumentations' `Affine` (when installed), as img/s, the ratio to the pipeline's, and the
largest difference from the pipeline's image pixels in the centre, which no transform moves a
border into. Part 3 times random pad-and-crop alone: OpenCV's `copyMakeBorder` (the pipeline's)
against `numpy.pad`. Everything runs on one core (OpenCV's and the backends' thread pools set
to 1). Each number is the median of `--repeats` rounds that run every candidate in turn, so
that the load of a shared machine falls on all of them alike; "img/s" counts wall time, "per
core" this process's CPU time (what the work costs one core, less sensitive to other jobs),
and "ratio" compares CPU times.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tgssalt.config import AugmentationConfig, resolve_config  # noqa: E402
from tgssalt.pipeline import (  # noqa: E402
    AugmentedBatches,
    affine_matrices,
    mask_targets,
    pad_and_crop,
    preprocess,
    warp_affine,
)

AFFINE = {"shift": 0.1, "scale": 0.1, "rotate": 10.0}
SETTINGS = {  # label -> augmentation keys over the defaults (flips on)
    "flips": {},
    "flips + jitter": {"brightness": 0.1, "contrast": 0.1},
    "flips + pad_crop 13": {"pad_crop": 13},
    "flips + affine": AFFINE,
    "flips + jitter + affine": {"brightness": 0.1, "contrast": 0.1, **AFFINE},
    "everything": {"brightness": 0.1, "contrast": 0.1, "pad_crop": 13, **AFFINE},
}


def interleaved_medians(works: dict, repeats: int) -> dict:
    """Median (wall, CPU) seconds of each `works[label]()` over `repeats` rounds, after one
    warm-up round; every round runs each work once in turn, so a change in the machine's load
    hits all of them alike. CPU seconds (this process, one thread) are what a work costs a
    core, whatever else the machine runs."""
    times = {label: [] for label in works}
    for round_ in range(repeats + 1):
        for label, work in works.items():
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            if round_:
                times[label].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {label: np.median(np.array(t), axis=0) for label, t in times.items()}


def print_table(title: str, images: int, seconds: dict, extra: dict | None = None) -> None:
    """img/s of wall time and of one core's CPU time per label, and the CPU ratio to the first
    label (the peer)."""
    print(f"\n{title}\n{'':36s} {'img/s':>8s} {'per core':>9s} {'ratio':>6s}")
    peer = next(iter(seconds.values()))[1]
    for label, (wall, cpu) in seconds.items():
        note = (extra or {}).get(label, "")
        print(f"{label:36s} {images / wall:8.0f} {images / cpu:9.0f} {peer / cpu:6.2f} {note}")


def fold_arrays(images: int, user: dict) -> tuple:
    """Random uint8 101 px images and 0/1 masks, preprocessed as a fold does for `user`."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (images, 101, 101, 1), dtype=np.uint8)
    masks = (rng.random((images, 101, 101)) < 0.3).astype(np.uint8)
    config = resolve_config(user)
    return preprocess(raw, config), mask_targets(masks, config)


def settings_table(args) -> None:
    """Part 1: img/s of one epoch per setting, and its ratio to flips alone."""
    for label, user in (("101 px resize", {}), ("128 px reflect pad", PAD_128)):
        x, y = fold_arrays(args.images, user)
        works = {}
        for name, keys in SETTINGS.items():
            aug = dataclasses.replace(AugmentationConfig(), **keys)
            batches = AugmentedBatches(x, y, args.batch, aug, seed=1)
            works[name] = lambda b=batches: [b[i] for i in range(len(b))]
        title = f"AugmentedBatches, {label}, batch {args.batch}, one epoch of {args.images}"
        print_table(title, len(x), interleaved_medians(works, args.repeats))


PAD_128 = {"input": {"size": 128, "mode": "pad"}}


def opencv_stacked(x, y, forward, _inverse):
    """OpenCV on image and mask stacked as one 2-channel array (a slower OpenCV path)."""
    xy = warp_affine(np.concatenate([x, y], axis=-1), forward)
    return xy[..., :1], xy[..., 1:]


def scipy_warp(x, y, _forward, inverse):
    """scipy.ndimage.affine_transform per image ((row, column) order)."""
    from scipy import ndimage

    out = np.empty_like(x), np.empty_like(y)
    for k, m in enumerate(inverse):
        matrix = np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]])
        for source, target in zip((x, y), out, strict=True):
            ndimage.affine_transform(
                source[k, ..., 0], matrix, (m[1, 2], m[0, 2]), output=target[k, ..., 0],
                order=1, mode="mirror",
            )  # fmt: skip
    return out


def skimage_warp(x, y, _forward, inverse):
    """skimage.transform.warp per image."""
    from skimage.transform import AffineTransform, warp

    out = np.empty_like(x), np.empty_like(y)
    for k, m in enumerate(inverse):
        transform = AffineTransform(matrix=np.vstack([m, [0, 0, 1]]))
        for source, target in zip((x, y), out, strict=True):
            target[k] = warp(source[k], transform, order=1, mode="reflect", preserve_range=True)
    return out


def keras_warp(x, y, _forward, inverse):
    """keras.ops.image.affine_transform on the whole batch, back to numpy."""
    import keras

    transforms = np.concatenate([inverse.reshape(-1, 6), np.zeros((len(x), 2))], axis=1)
    transforms = transforms.astype(np.float32)
    return tuple(
        keras.ops.convert_to_numpy(
            keras.ops.image.affine_transform(a, transforms, "bilinear", fill_mode="reflect")
        )
        for a in (x, y)
    )


def albumentations_warp():
    """albumentations' Affine with the pipeline's ranges per image (its own random draws), or
    None when albumentations is not installed."""
    try:
        import albumentations as A
    except ImportError:
        return None
    affine = A.Affine(
        translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-10, 10),
        border_mode=cv2.BORDER_REFLECT_101, p=1,
    )  # fmt: skip
    compose = A.Compose([affine], seed=1)

    def run(x, y, _forward, _inverse):
        out = np.empty_like(x), np.empty_like(y)
        for k in range(len(x)):
            done = compose(image=x[k], mask=y[k])
            out[0][k], out[1][k] = done["image"], done["mask"]
        return out

    return run


def candidates() -> dict:
    """Label -> warp(x, y, forward, inverse matrices) for every installed candidate."""
    found = {
        "OpenCV warpAffine (pipeline)": lambda x, y, f, _i: (warp_affine(x, f), warp_affine(y, f)),
        "OpenCV, image + mask stacked": opencv_stacked,
        "scipy.ndimage affine_transform": scipy_warp,
        "skimage.transform.warp": skimage_warp,
        "keras.ops.image.affine_transform": keras_warp,
    }
    albumentations = albumentations_warp()
    if albumentations is None:
        print("albumentations not installed: `pip install albumentations` to compare it")
    else:
        found["albumentations Affine"] = albumentations
    return found


def split(args, user: dict) -> list:
    """A fold's (images, masks) arrays for `user`, in batches of `args.batch`."""
    x, y = fold_arrays(args.images, user)
    return [(x[i : i + args.batch], y[i : i + args.batch]) for i in range(0, len(x), args.batch)]


def warp_table(args) -> None:
    """Part 2: the affine warp alone, batch by batch, per candidate library, and the largest
    difference of each from OpenCV's pixels in the centre."""
    batches = split(args, {})
    aug = dataclasses.replace(AugmentationConfig(), **AFFINE)
    rng = np.random.default_rng(0)
    forward = [affine_matrices(aug, 101, len(x), rng) for x, _ in batches]
    inverse = [np.stack([cv2.invertAffineTransform(m) for m in f]) for f in forward]
    works, centres = {}, {}
    for label, warp in candidates().items():
        works[label] = lambda warp=warp: [
            warp(x, y, f, i) for (x, y), f, i in zip(batches, forward, inverse, strict=True)
        ]
        centres[label] = np.concatenate([x for x, _ in works[label]()])[:, 30:-30, 30:-30]
    reference = next(iter(centres.values()))  # the centre: never a border pixel
    diffs = {k: f"max diff {np.abs(v - reference).max():.4f}" for k, v in centres.items()}
    diffs["albumentations Affine"] = "(its own random draws)"
    title = f"affine warp alone, 101 px image + mask, batch {args.batch}, {args.images} images"
    print_table(title, args.images, interleaved_medians(works, args.repeats), diffs)


def numpy_pad_and_crop(images: np.ndarray, pad: int, corners: np.ndarray) -> np.ndarray:
    """Pad-and-crop with `numpy.pad` on the whole batch, then each image's window."""
    size = images.shape[1]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    windows = zip(padded, corners, strict=True)
    return np.stack([p[r : r + size, c : c + size] for p, (r, c) in windows])


def pad_crop_table(args) -> None:
    """Part 3: random pad-and-crop by 13 px: OpenCV (the pipeline's) against numpy.pad."""
    batches = split(args, {})
    rng = np.random.default_rng(0)
    corners = [rng.integers(0, 27, (len(x), 2)) for x, _ in batches]
    works = {}
    for label, crop in (("OpenCV copyMakeBorder (pipeline)", pad_and_crop),
                        ("numpy.pad", numpy_pad_and_crop)):  # fmt: skip
        works[label] = lambda crop=crop: [
            (crop(x, 13, c), crop(y, 13, c)) for (x, y), c in zip(batches, corners, strict=True)
        ]
    title = f"pad-and-crop alone, 13 px, 101 px image + mask, batch {args.batch}"
    print_table(title, args.images, interleaved_medians(works, args.repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048, help="images per epoch")
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per number")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    settings_table(args)
    warp_table(args)
    pad_crop_table(args)


if __name__ == "__main__":
    main()
