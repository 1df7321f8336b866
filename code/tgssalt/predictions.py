"""A fold's saved predictions: ids, float16 probabilities and the metadata to match them up.

The metadata (run name, config name and version, fold, image size) lets the fold ensemble refuse
to mix predictions of incompatible runs, including folds trained on another machine.
"""

import json
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .config import Config
from .errors import UserError
from .layout import parse_fold_run


def prediction_meta(config: Config, run: str, split: str, threshold: float) -> dict:
    """The metadata stored with a fold's predictions, for the ensemble's compatibility checks."""
    return {
        "run": run,
        "name": config.name,
        "version": config.version,
        "split": split,
        "input_size": config.input.size,
        "folds": config.crossvalidation.folds,
        "threshold": threshold,
        "fold": parse_fold_run(run)[1],
    }


def save_predictions(path: Path, ids: np.ndarray, probs: np.ndarray, meta: dict) -> None:
    """Write ids, probabilities (as float16) and JSON metadata to an `.npz`, atomically."""
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            ids=np.asarray(ids, dtype=str),
            probs=probs.astype(np.float16),
            meta=np.array(json.dumps(meta)),
        )


def load_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read what `save_predictions` wrote: (ids, float16 probabilities, metadata)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["ids"], data["probs"], json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a prediction file ({exc})") from None


def load_header(path: Path) -> tuple[np.ndarray, dict]:
    """Read only the ids and metadata of a prediction file, leaving its probabilities on disk.

    `.npz` members load lazily, so checking every fold's metadata costs no probability reads.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["ids"], json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a prediction file ({exc})") from None
