"""Reading the Kaggle data layout: ids, images and masks, each checked with a one-line error.

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
from .errors import UserError, first_line

_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
# Larger images are refused from their header: a seismic section is ~100x100, and a PNG of a
# few KB can claim billions of pixels (a decompression bomb).
MAX_IMAGE_PIXELS = 4096 * 4096
# The Kaggle layout: the labelled images and masks, the test images and the CSVs, under the
# data folder.
TRAIN_IMAGES = "train/images"
TRAIN_MASKS = "train/masks"
TEST_IMAGES = "test/images"
IMAGE_FOLDERS = (TRAIN_IMAGES, TRAIN_MASKS, TEST_IMAGES)
LAYOUT_CSVS = ("train.csv", "depths.csv", "sample_submission.csv")  # depths.csv optional


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
    frame = read_csv(csv_path)
    if "id" not in frame.columns:
        raise UserError(f"{csv_path}: no 'id' column (columns: {', '.join(frame.columns)})")
    ids = frame["id"].to_numpy()
    check_ids(ids, csv_path)
    return ids


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV as strings (empty cells stay ""); errors name the file."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = first_line(exc)
        raise UserError(f"{path}: not a readable CSV ({reason})") from None


def check_ids(ids, source: str | Path, file_names: bool = True) -> None:
    """Ids must be non-empty and unique; with `file_names` (ids that name PNGs), plain file names
    too, so none reaches outside its folder."""
    ids = pd.Series(ids, dtype=str)
    if file_names:
        bad = [i for i in ids if not _PLAIN_ID.match(i) or i in (".", "..")]
        if bad:
            raise UserError(f"{source}: {len(bad)} ids are not plain file names, e.g. {bad[:3]}")
    blank = np.flatnonzero(ids.str.strip() == "")
    if blank.size:
        raise UserError(f"{source}: empty id on line {blank[0] + 2}")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise UserError(f"{source}: {len(dup)} duplicate ids, e.g. {', '.join(map(repr, dup[:3]))}")


def _open_checked(img: Image.Image, path: Path) -> Image.Image:
    """Refuse decompression bombs from the header, before any pixel is decoded."""
    if img.width * img.height > MAX_IMAGE_PIXELS:
        raise UserError(
            f"{path}: image is {img.width}x{img.height}, over the {MAX_IMAGE_PIXELS:,}-pixel "
            "limit for seismic sections; refusing to decode it"
        )
    return img


def read_png(path: Path, channels: int = 1) -> np.ndarray:
    """Read an 8-bit PNG as (H, W, channels) uint8; errors name the file."""
    return _read(path, channels)[0]


def _read(path: Path, channels: int) -> tuple[np.ndarray, int]:
    """(pixels as (H, W, channels) uint8, the file's own channel count)."""
    try:
        with Image.open(path) as img:
            bands = len(_open_checked(img, path).getbands())
            array = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot read image ({exc})") from None
    return (array[..., None] if array.ndim == 2 else array), bands


def read_images(folder: Path, ids: np.ndarray, channels: int = 1) -> np.ndarray:
    """Read `<folder>/<id>.png` for every id into one (N, 101, 101, channels) uint8 array.

    Every file is read before failing, so the error lists all images of another size, or of a
    channel count unlike the others (with the first few ids and a count).
    """
    out = np.zeros((len(ids), IMAGE_SIZE, IMAGE_SIZE, channels), dtype=np.uint8)
    wrong_size, bands = {}, np.empty(len(ids), dtype=np.int8)
    for k, image_id in enumerate(ids):
        image, bands[k] = _read(folder / f"{image_id}.png", channels)
        if image.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE):
            out[k] = image
        else:
            wrong_size[image_id] = f"{image.shape[1]}x{image.shape[0]}"
    _report(folder, list(wrong_size), f"image(s) are not {IMAGE_SIZE}x{IMAGE_SIZE}", wrong_size)
    if len(ids):
        usual = np.bincount(bands).argmax()
        odd = {i: f"{b} channels" for i, b in zip(ids, bands, strict=True) if b != usual}
        _report(folder, list(odd), f"image(s) differ from the usual {usual} channel(s)", odd)
    return out


def _report(where: Path, bad: list, what: str, detail: dict | None = None) -> None:
    """Fail naming how many ids are bad and the first few (with a detail each, if given)."""
    if bad:
        shown = [f"{i} ({detail[i]})" if detail else str(i) for i in bad[:3]]
        raise UserError(f"{where}: {len(bad)} {what}, e.g. {', '.join(shown)}")


def binary_masks(masks: np.ndarray, folder: Path, ids: np.ndarray) -> np.ndarray:
    """(N, H, W) mask pixels -> 0/1. Each mask must hold only 0 and 255, or only 0 and 1
    (16-bit 0/65535 PNGs read as 0/255); anything else (a grey or anti-aliased mask) is an
    error, rather than a silent threshold."""
    ok = np.isin(masks, (0, 255)).all(axis=(1, 2)) | (masks <= 1).all(axis=(1, 2))
    _report(folder, list(ids[~ok]), "mask(s) are not binary (values other than 0 and 255)")
    return (masks > 0).astype(np.uint8)


def truth_masks(data_folder: Path, ids: np.ndarray) -> np.ndarray:
    """The training masks (N, 101, 101) 0/1 of the validation ids, as `load_train` reads."""
    masks = read_images(Path(data_folder) / TRAIN_MASKS, ids, 1)[..., 0]
    return (masks > 127).astype(np.uint8)


def train_images(data_folder: Path, ids: np.ndarray, channels: int = 1) -> np.ndarray:
    """The labelled images (N, 101, 101, channels) uint8 of `ids`, as `load_train` reads them."""
    return read_images(Path(data_folder) / TRAIN_IMAGES, ids, channels)


def load_train(data_folder: Path, channels: int = 1) -> Dataset:
    """Load every labelled image and mask listed in `train.csv`, validated."""
    ids = read_ids(data_folder / "train.csv")
    if len(ids) == 0:
        raise UserError(f"{data_folder / 'train.csv'}: the train set is empty")
    masks_folder = data_folder / TRAIN_MASKS
    _require_files(masks_folder, ids, "mask")
    _require_files(data_folder / TRAIN_IMAGES, ids, "image")
    _require_depths(data_folder, ids)
    images = train_images(data_folder, ids, channels)
    masks = binary_masks(read_images(masks_folder, ids, 1)[..., 0], masks_folder, ids)
    return Dataset(ids, images, masks)


def _require_depths(data_folder: Path, ids: np.ndarray) -> None:
    """When `depths.csv` is there (the Kaggle layout), every id must have a numeric depth."""
    path = data_folder / "depths.csv"
    if not path.is_file():
        return
    frame = read_csv(path)
    if "z" not in frame.columns or "id" not in frame.columns:
        raise UserError(f"{path}: expected columns id,z (columns: {', '.join(frame.columns)})")
    depth = pd.to_numeric(frame["z"], errors="coerce")
    known = set(frame["id"][depth.notna()])
    _report(path, [i for i in ids if i not in known], "id(s) have no numeric depth")


def test_ids(data_folder: Path) -> np.ndarray:
    """Test ids in `sample_submission.csv` order, each checked to have an image."""
    ids = read_ids(data_folder / "sample_submission.csv")
    folder = data_folder / TEST_IMAGES
    _require_files(folder, ids, "test image")
    listed = set(ids)
    extra = sorted(p.stem for p in folder.glob("*.png") if p.stem not in listed)
    _report(folder, extra, "image(s) are not listed in sample_submission.csv")
    _require_depths(data_folder, ids)
    _check_headers(folder, ids)
    return ids


def _check_headers(folder: Path, ids: np.ndarray) -> None:
    """Check each PNG's header (format and size, not its pixels: ~30 us an image), so a bad test
    image fails before training rather than after it."""
    wrong_size = {}
    for image_id in ids:
        path = folder / f"{image_id}.png"
        try:
            with Image.open(path) as img:
                width, height = _open_checked(img, path).size
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(f"{path}: cannot read image ({exc})") from None
        if (width, height) != (IMAGE_SIZE, IMAGE_SIZE):
            wrong_size[image_id] = f"{width}x{height}"
    _report(folder, list(wrong_size), f"image(s) are not {IMAGE_SIZE}x{IMAGE_SIZE}", wrong_size)


def _require_files(folder: Path, ids: np.ndarray, what: str) -> None:
    """Fail listing the first few ids (and a count) whose PNG is missing."""
    present = {p.stem for p in folder.glob("*.png")} if folder.is_dir() else set()
    missing = [i for i in ids if i not in present]
    _report(folder, missing, f"{what}(s) missing for ids listed in the CSV")
