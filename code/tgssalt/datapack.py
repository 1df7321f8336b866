"""A Kaggle-layout data folder packed into one compressed .npz, and unpacked back, exactly.

For machines the data cannot be copied to file by file: a GPU machine without network takes the
repository plus a few carried files under a size limit (64 MiB), and 5,200 PNGs of the
development subset pack into about 39 MiB. `pack` stores the train images (one channel: the
PNGs are RGB with three equal channels, which is checked), the 0/1 masks, the test images and
the three CSVs verbatim (only their rows for the packed ids, when `limit` packs a subset);
`unpack` writes the same layout back: images as RGB PNGs with equal channels, masks as 0/255.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path, write_text
from .data import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    TRAIN_MASKS,
    binary_masks,
    read_csv,
    read_ids,
    read_images,
    resolve_data_folder,
)
from .errors import UserError

CSVS = {"train.csv": "train", "sample_submission.csv": "test", "depths.csv": "all"}


def pack(data_folder: Path, npz_path: Path, limit: int | None = None) -> dict:
    """Pack `data_folder` (its first `limit` train and test images if given) into `npz_path`."""
    folder, npz_path = resolve_data_folder(data_folder), Path(npz_path)
    ids = {
        "train": read_ids(folder / "train.csv")[:limit],
        "test": read_ids(folder / "sample_submission.csv")[:limit],
    }
    arrays = {f"{split}_ids": np.asarray(ids[split], dtype=str) for split in ids}
    arrays["train_images"] = _one_channel(folder / TRAIN_IMAGES, ids["train"])
    masks = read_images(folder / TRAIN_MASKS, ids["train"], 1)[..., 0]
    arrays["train_masks"] = binary_masks(masks, folder / TRAIN_MASKS, ids["train"])
    arrays["test_images"] = _one_channel(folder / TEST_IMAGES, ids["test"])
    keep = {**ids, "all": np.concatenate([ids["train"], ids["test"]])}
    for name, split in CSVS.items():
        if (folder / name).is_file():
            arrays[f"csv:{name}"] = np.array(_csv_rows(folder / name, keep[split]))
    with atomic_path(npz_path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return {"train": len(ids["train"]), "test": len(ids["test"]), "bytes": npz_path.stat().st_size}


def _one_channel(folder: Path, ids: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8: the images' one channel; a UserError if their RGB channels differ."""
    images = read_images(folder, ids, 3)
    differ = ~((images[..., 0] == images[..., 1]) & (images[..., 0] == images[..., 2])).all(
        axis=(1, 2)
    )
    if differ.any():
        raise UserError(
            f"{folder}: {int(differ.sum())} image(s) have unequal RGB channels, e.g. "
            f"{ids[differ][0]}; only grayscale data (stored as RGB or not) packs"
        )
    return images[..., 0]


def _csv_rows(path: Path, ids: np.ndarray) -> str:
    """The CSV's text restricted to the rows of `ids` (all of them when nothing is left out)."""
    frame = read_csv(path)
    kept = frame[frame["id"].isin(set(ids))]
    if len(kept) == len(frame):
        return path.read_text()
    out = io.StringIO()
    kept.to_csv(out, index=False)
    return out.getvalue()


def unpack(npz_path: Path, out_folder: Path) -> dict:
    """Write the Kaggle layout packed in `npz_path` into `out_folder` (new or empty)."""
    out_folder = Path(out_folder)
    if out_folder.exists() and any(out_folder.iterdir()):
        raise UserError(f"{out_folder}: not empty; unpack into a new folder")
    if not Path(npz_path).is_file():
        raise UserError(f"{npz_path}: packed data not found")
    with np.load(npz_path) as packed:
        for split, sub in (("train", TRAIN_IMAGES), ("test", TEST_IMAGES)):
            folder = out_folder / sub
            _write_pngs(folder, packed[f"{split}_ids"], packed[f"{split}_images"], rgb=True)
        masks = packed["train_masks"] * np.uint8(255)
        _write_pngs(out_folder / TRAIN_MASKS, packed["train_ids"], masks, rgb=False)
        for key in (k for k in packed.files if k.startswith("csv:")):
            write_text(out_folder / key.removeprefix("csv:"), str(packed[key]))
        return {"train": len(packed["train_ids"]), "test": len(packed["test_ids"])}


def _write_pngs(folder: Path, ids: np.ndarray, images: np.ndarray, rgb: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, image in zip(ids, images, strict=True):
        pixels = np.repeat(image[..., None], 3, axis=-1) if rgb else image
        Image.fromarray(pixels).save(folder / f"{image_id}.png")
