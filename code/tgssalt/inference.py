"""Prediction with horizontal-flip test-time augmentation (TTA), in bounded memory."""

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from .config import Config
from .data import read_images
from .device import jit_compile_setting
from .models import heads, with_sigmoid
from .pipeline import preprocess
from .sizes import to_original_size


def probability_model(model: keras.Model) -> keras.Model:
    """A logits model wrapped to output probabilities, compiled for fast prediction here."""
    return compile_for_prediction(with_sigmoid(model))


def compile_for_prediction(prob_model: keras.Model) -> keras.Model:
    """Compile a probability model (no loss) with this device's jit setting, for `predict`."""
    prob_model.compile(jit_compile=jit_compile_setting())
    return prob_model


def predict_probs(model: keras.Model, images: np.ndarray, config: Config) -> np.ndarray:
    """Salt probabilities (N, 101, 101) float32 for uint8 images, averaged over flips if TTA is on.

    `model` outputs probabilities (see `probability_model`); with the empty-mask head's channel,
    the average is emptied on images whose averaged head says "no salt" (`gate`).
    """
    x = preprocess(images, config)
    batch = config.predict.batch_size
    probs = model.predict(x, batch_size=batch, verbose=0)
    if config.tta.hflip:
        flipped = model.predict(x[:, :, ::-1], batch_size=batch, verbose=0)
        probs = 0.5 * (probs + flipped[:, :, ::-1])
    return to_original_size(gate(np.asarray(probs, dtype=np.float32)), config.input)


def gate(probs: np.ndarray) -> np.ndarray:
    """(N, H, W, 1) mask probabilities of a model's (averaged) output: with the empty head's
    channel beside the mask's, the mask emptied where that head says "no salt"."""
    if not heads.is_packed_tensor(probs):
        return probs
    return keras.ops.convert_to_numpy(heads.gated_probability(probs, from_logits=False))


def predict_folder(
    model: keras.Model, folder: Path, ids: np.ndarray, config: Config, chunk: int = 1000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (ids, probabilities) chunk by chunk, so 18,000 test images never load at once."""
    for start in range(0, len(ids), chunk):
        chunk_ids = ids[start : start + chunk]
        images = read_images(folder, chunk_ids, config.input.channels)
        yield chunk_ids, predict_probs(model, images, config)
