"""Run-length encoding exactly as the competition: 1-based `start length` pairs, column-major.

Pixels are numbered top to bottom, then left to right (Fortran order); an empty mask is "".
"""

import re

import numpy as np

from .competition import IMAGE_SIZE
from .errors import UserError

# ASCII digits only (Python's int() also takes other scripts' digits), at most 12 of them:
# no int64 overflow, and far beyond any image's pixel count.
_INTEGER = re.compile(r"-?[0-9]{1,12}\Z", re.ASCII)


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D binary mask as the competition's RLE string."""
    pixels = np.asarray(mask, dtype=bool).flatten(order="F")
    padded = np.concatenate([[False], pixels, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    starts, ends = changes[0::2], changes[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends, strict=True))


def parse_rle(rle: str | float | None, n_pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> np.ndarray:
    """Parse and validate an RLE string into an (n, 2) array of 0-based (start, length) runs.

    Raises `UserError` unless the runs are integer pairs, in range, ascending and non-overlapping.
    NaN or None (how pandas reads an empty cell) means an empty mask.
    """
    if rle is None or (isinstance(rle, float) and np.isnan(rle)) or str(rle).strip() == "":
        return np.zeros((0, 2), dtype=np.int64)
    tokens = str(rle).split()
    if len(tokens) % 2:
        raise UserError(f"RLE has an odd number of values ({len(tokens)})")
    if not all(_INTEGER.match(t) for t in tokens):
        raise UserError(f"RLE has a non-integer or out-of-range value in {str(rle)[:40]!r}")
    runs = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    starts, lengths = runs[:, 0] - 1, runs[:, 1]
    if (starts < 0).any() or (lengths < 1).any():
        raise UserError("RLE has a start below 1 or a length below 1")
    ends = starts + lengths
    if (ends > n_pixels).any():
        raise UserError(f"RLE runs past the image's {n_pixels} pixels")
    if (starts[1:] < ends[:-1]).any():
        raise UserError("RLE runs are not ascending and non-overlapping")
    return np.stack([starts, lengths], axis=1)


def rle_decode(
    rle: str | float | None, shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)
) -> np.ndarray:
    """Decode an RLE string into a uint8 mask of `shape` with values 0/1."""
    n_pixels = shape[0] * shape[1]
    flat = np.zeros(n_pixels, dtype=np.uint8)
    for start, length in parse_rle(rle, n_pixels):
        flat[start : start + length] = 1
    return flat.reshape(shape, order="F")
