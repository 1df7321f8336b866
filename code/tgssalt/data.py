"""Reading the Kaggle data layout, cross-validation folds, and the training input pipeline.

Layout: `train/images/<id>.png`, `train/masks/<id>.png`, `test/images/<id>.png`, `train.csv`,
`depths.csv`, `sample_submission.csv`. Images are 8-bit PNGs stored as RGB with equal channels.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .competition import IMAGE_SIZE
from .errors import UserError

_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Dataset:
    """Images (N, H, W, C) uint8 and, for labelled data, masks (N, H, W) 0/1, with ids."""

    ids: np.ndarray
    images: np.ndarray
    masks: np.ndarray | None = None


def resolve_data_folder(folder: str | Path) -> Path:
    """The folder holding `train.csv`: `folder` or its `data/` child (the Azure mount)."""
    folder = Path(folder)
    for candidate in (folder, folder / "data"):
        if (candidate / "train.csv").is_file():
            return candidate
    if not folder.exists():
        raise UserError(
            f"{folder}: data folder not found (generate demo data with "
            "`python code/make_synthetic_data.py` or put the Kaggle data there)"
        )
    raise UserError(
        f"{folder}: no train.csv here or in {folder / 'data'} (expected the Kaggle layout)"
    )


def read_ids(csv_path: Path) -> np.ndarray:
    """The `id` column of a Kaggle CSV, checked to be unique plain file names."""
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: file not found")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{csv_path}: not a valid CSV ({str(exc).splitlines()[0]})") from None
    if "id" not in frame.columns:
        raise UserError(f"{csv_path}: no 'id' column (columns: {', '.join(frame.columns)})")
    ids = frame["id"].to_numpy()
    _check_ids(ids, csv_path)
    return ids


def _check_ids(ids: np.ndarray, source: Path) -> None:
    bad = [i for i in ids if not _PLAIN_ID.match(i) or i in (".", "..")]
    if bad:
        raise UserError(f"{source}: {len(bad)} ids are not plain file names, e.g. {bad[:3]}")
    dup = pd.Series(ids)[pd.Series(ids).duplicated()].unique()
    if len(dup):
        raise UserError(f"{source}: {len(dup)} duplicate ids, e.g. {list(dup[:3])}")


def read_png(path: Path, channels: int = 1) -> np.ndarray:
    """Read an 8-bit PNG as (H, W, channels) uint8; errors name the file."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({exc})") from None
    return array[..., None] if array.ndim == 2 else array


def read_images(folder: Path, ids: np.ndarray, channels: int = 1) -> np.ndarray:
    """Read `<folder>/<id>.png` for every id into one (N, 101, 101, channels) uint8 array."""
    out = np.empty((len(ids), IMAGE_SIZE, IMAGE_SIZE, channels), dtype=np.uint8)
    for k, image_id in enumerate(ids):
        path = folder / f"{image_id}.png"
        image = read_png(path, channels)
        if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, "
                f"expected {IMAGE_SIZE}x{IMAGE_SIZE}"
            )
        out[k] = image
    return out


def load_train(data_folder: Path, channels: int = 1) -> Dataset:
    """Load every labelled image and mask listed in `train.csv`."""
    ids = read_ids(data_folder / "train.csv")
    if len(ids) == 0:
        raise UserError(f"{data_folder / 'train.csv'}: the train set is empty")
    _require_files(data_folder / "train" / "masks", ids, "mask")
    _require_files(data_folder / "train" / "images", ids, "image")
    images = read_images(data_folder / "train" / "images", ids, channels)
    masks = read_images(data_folder / "train" / "masks", ids, 1)[..., 0]
    return Dataset(ids, images, (masks > 127).astype(np.uint8))


def test_ids(data_folder: Path) -> np.ndarray:
    """Test ids in `sample_submission.csv` order, each checked to have an image."""
    ids = read_ids(data_folder / "sample_submission.csv")
    _require_files(data_folder / "test" / "images", ids, "test image")
    _check_headers(data_folder / "test" / "images", ids)
    return ids


def _check_headers(folder: Path, ids: np.ndarray) -> None:
    """Check each PNG's header (format and size, not its pixels: ~30 us an image), so a bad test
    image fails before training rather than after it."""
    for image_id in ids:
        path = folder / f"{image_id}.png"
        try:
            with Image.open(path) as img:
                size = img.size
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(f"{path}: cannot read image ({exc})") from None
        if size != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(
                f"{path}: image is {size[0]}x{size[1]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}"
            )


def _require_files(folder: Path, ids: np.ndarray, what: str) -> None:
    """Fail listing the first few ids (and a count) whose PNG is missing."""
    present = {p.stem for p in folder.glob("*.png")} if folder.is_dir() else set()
    missing = [i for i in ids if i not in present]
    if missing:
        raise UserError(
            f"{folder}: {len(missing)} {what}(s) missing for ids listed in the CSV, "
            f"e.g. {missing[:3]}"
        )
