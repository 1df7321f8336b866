"""Fake data and fake fold outputs for the ensemble, run_folds and predict tests: no training.

`write_data` writes a tiny Kaggle layout; `write_fold` writes what `fold_training.train_fold`
would for one fold (the split file, config, metrics, validation and test predictions), with
probabilities made from the true masks plus noise, and on the validation images without salt a
small false-positive blob that a min-area rule removes.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tgssalt.config import Config, CrossValidationConfig, InputConfig, ModelConfig, save_config
from tgssalt.layout import Outputs, base_run, fold_run
from tgssalt.predictions import prediction_meta, save_predictions
from tgssalt.rle import rle_encode
from tgssalt.splits import save_split

BLOB = 5  # side of the false-positive square on empty images: 25 pixels


def masks_for(n: int, seed: int) -> np.ndarray:
    """n 101x101 masks: a third empty, the rest rectangles of at least 20x20 pixels."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 101, 101), np.uint8)
    for i in range(n):
        if i % 3:
            top, left = rng.integers(0, 60, 2)
            height, width = rng.integers(20, 41, 2)
            masks[i, top : top + height, left : left + width] = 1
    return masks


def write_data(root: Path, n_train: int = 24, n_test: int = 6, seed: int = 0) -> dict:
    """A Kaggle-layout folder: train masks and images, train.csv, test images, sample submission.

    Returns {"train_ids", "masks", "test_ids"}.
    """
    masks = masks_for(n_train, seed)
    train_ids = [f"t{seed}x{i:03d}" for i in range(n_train)]
    test_ids = [f"s{seed}x{i:03d}" for i in range(n_test)]
    for sub in ("train/images", "train/masks", "test/images"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    for image_id, mask in zip(train_ids, masks, strict=True):
        Image.fromarray(mask * np.uint8(255)).save(root / "train/masks" / f"{image_id}.png")
        Image.fromarray(rng.integers(0, 256, (101, 101), np.uint8)).save(
            root / "train/images" / f"{image_id}.png"
        )
    for image_id in test_ids:
        Image.fromarray(rng.integers(0, 256, (101, 101), np.uint8)).save(
            root / "test/images" / f"{image_id}.png"
        )
    rles = "".join(f"{i},{rle_encode(m)}\n" for i, m in zip(train_ids, masks, strict=True))
    (root / "train.csv").write_text("id,rle_mask\n" + rles)
    (root / "sample_submission.csv").write_text(
        "id,rle_mask\n" + "".join(f"{i},1 1\n" for i in test_ids)
    )
    return {"train_ids": np.array(train_ids), "masks": masks, "test_ids": np.array(test_ids)}


def noisy_probs(masks: np.ndarray, seed: int, blob: bool = True) -> np.ndarray:
    """Probabilities near the masks, plus a confident blob on the empty ones when `blob`."""
    rng = np.random.default_rng(seed)
    probs = 0.15 + 0.7 * masks + rng.normal(0, 0.08, masks.shape)
    if blob:
        empty = masks.reshape(len(masks), -1).max(axis=1) == 0
        probs[empty, 40 : 40 + BLOB, 40 : 40 + BLOB] = 0.9
    return np.clip(probs, 0, 1).astype(np.float16)


def config_for(name: str = "fake-%s", version: int = 1, folds: int = 3, size: int = 101) -> Config:
    """A resolved config with a tiny model, built directly (without importing Keras for the
    registries' checks)."""
    return Config(
        name=name,
        version=version,
        crossvalidation=CrossValidationConfig(folds=folds),
        input=InputConfig(size=size),
        model=ModelConfig(start_filters=2, depth=2, dropout=0.0),
    )


def fold_meta(config: Config, fold: int, split: str, threshold: float = 0.5) -> dict:
    """The metadata `fold_training.train_fold` stores with a fold's predictions."""
    return prediction_meta(config, fold_run(base_run(config), fold), split, threshold)


def write_fold(
    outputs: Path, config: Config, fold: int, data: dict, seed: int = 0, probs=None
) -> str:
    """Write one fold's outputs as `fold_training.train_fold` names them; return its run name.
    The split puts image `i` in fold `i % folds`. `probs` (one per training image, in
    `data["train_ids"]` order) replaces the noisy validation probabilities."""
    layout = Outputs(outputs)
    out = layout.run(fold_run(base_run(config), fold))
    n_folds = config.crossvalidation.folds
    index = np.arange(len(data["train_ids"]))
    split = layout.split_file(base_run(config))
    save_split(split, data["train_ids"], data["masks"], index % n_folds)
    valid = index[fold::n_folds]
    save_predictions(
        out.predictions("valid"),
        data["train_ids"][valid],
        noisy_probs(data["masks"][valid], seed + fold) if probs is None else probs[valid],
        fold_meta(config, fold, "valid"),
    )
    test_masks = masks_for(len(data["test_ids"]), 99)
    save_predictions(
        out.predictions("test"),
        data["test_ids"],
        noisy_probs(test_masks, seed + 10 + fold),
        fold_meta(config, fold, "test"),
    )
    save_config(config, out.config)
    metrics = {"validation_score": 0.5, "threshold": 0.5}
    out.metrics.write_text(json.dumps(metrics))
    return out.run


def peaked_probs(masks: np.ndarray, rim: int = 3) -> np.ndarray:
    """Probabilities that only hysteresis binarises exactly: each salt body a sure core (0.9)
    inside a faint rim (0.6, `rim` pixels wide), and on each empty mask a faint 25x25 blob (0.6)
    as big as a true body. One threshold keeps the blob or cuts the rim; a min-area rule large
    enough to drop the blob drops true bodies too; keeping bodies of p > 0.5 that peak above 0.7
    is exact."""
    probs = np.full(masks.shape, 0.1, np.float32)
    probs[masks != 0] = 0.6
    core = ndimage.binary_erosion(masks != 0, np.ones((1, 2 * rim + 1, 2 * rim + 1), bool))
    probs[core] = 0.9
    empty = masks.reshape(len(masks), -1).max(axis=1) == 0
    probs[empty, 30:55, 30:55] = 0.6
    return probs.astype(np.float16)
