"""RLE encode/decode: hand-made cases, malformed strings, a round-trip property, and real data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tgssalt.errors import UserError
from tgssalt.rle import parse_rle, rle_decode, rle_encode

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "tgs"


def _round_trip(mask: np.ndarray) -> str:
    """Encode, check the decode gives the mask back, and return the RLE."""
    rle = rle_encode(mask)
    np.testing.assert_array_equal(rle_decode(rle, mask.shape), mask.astype(np.uint8))
    return rle


def test_empty_mask_is_empty_string() -> None:
    assert _round_trip(np.zeros((101, 101), np.uint8)) == ""


def test_full_mask_is_one_run() -> None:
    assert _round_trip(np.ones((101, 101), np.uint8)) == "1 10201"


@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [(0, 0, "1 1"), (100, 0, "101 1"), (0, 100, "10101 1"), (100, 100, "10201 1")],
)
def test_single_pixel_corners(row: int, col: int, expected: str) -> None:
    mask = np.zeros((101, 101), np.uint8)
    mask[row, col] = 1
    assert _round_trip(mask) == expected


def test_column_major_order() -> None:
    """Pixels are numbered down the first column first: (row 1, col 0) is pixel 2."""
    mask = np.zeros((101, 101), np.uint8)
    mask[1, 0] = 1
    assert _round_trip(mask) == "2 1"
    mask[0, 1] = 1  # pixel 102, the top of the second column
    assert _round_trip(mask) == "2 1 102 1"


def test_run_wraps_across_columns() -> None:
    mask = np.zeros((3, 2), np.uint8)
    mask[2, 0] = mask[0, 1] = 1  # bottom of column 0, then top of column 1: one run
    assert _round_trip(mask) == "3 2"


def test_empty_cell_values_decode_empty() -> None:
    for value in ("", "  ", None, float("nan")):
        assert rle_decode(value).sum() == 0


@pytest.mark.parametrize(
    "rle",
    [
        "1",
        "1 2 3",
        "5 0",
        "0 3",
        "-1 2",
        "10 5 12 3",
        "10 5 3 2",
        "10200 3",
        "10202 1",
        "1 x",
        "1.5 2",
        "a b",
    ],
)
def test_malformed_rle_rejected(rle: str) -> None:
    """Odd count, zero length, start 0/negative, overlap, unsorted, out of range, non-integer."""
    with pytest.raises(UserError):
        parse_rle(rle, 101 * 101)


def test_adjacent_runs_accepted() -> None:
    """Touching (not overlapping) runs are valid even though encode would merge them."""
    assert rle_decode("1 2 3 2", (2, 2)).sum() == 4


@settings(max_examples=200, deadline=None, database=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24)))
def test_round_trip_property(mask: np.ndarray) -> None:
    rle = _round_trip(mask)
    runs = parse_rle(rle, mask.size)
    assert runs[:, 1].sum() == mask.sum()
    assert (runs[1:, 0] > runs[:-1, 0] + runs[:-1, 1]).all()  # maximal runs: gaps between them


@settings(max_examples=30, deadline=None, database=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_round_trip_competition_size(seed: int, density: float) -> None:
    mask = np.random.default_rng(seed).random((101, 101)) < density
    _round_trip(mask)


def _read_mask_png(path: Path) -> np.ndarray:
    """A mask PNG (gray or RGB, 8- or 16-bit) as a 0/1 array."""
    from skimage.io import imread

    image = imread(path)
    if image.ndim == 3:
        image = image[..., 0]
    return (image > 0).astype(np.uint8)


def test_real_train_csv_matches_mask_pngs() -> None:
    if not (DATA / "train.csv").is_file():
        pytest.skip(f"real data not found at {DATA}")
    df = pd.read_csv(DATA / "train.csv", keep_default_na=False, dtype=str)
    assert len(df) > 0
    for image_id, rle in zip(df["id"], df["rle_mask"], strict=True):
        expected = _read_mask_png(DATA / "train" / "masks" / f"{image_id}.png")
        decoded = rle_decode(rle, expected.shape)
        np.testing.assert_array_equal(decoded, expected, err_msg=image_id)
        assert rle_encode(expected) == rle, image_id
