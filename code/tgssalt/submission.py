"""Submission files: validate, write atomically, read truth, and score against truth.

A submission is a CSV with the header `id,rle_mask` and one row per test image, the mask as the
competition's RLE ("" for an empty mask). Every problem is reported as a one-line `UserError`
that names the file (and the row's id), so a bad file is caught here rather than by Kaggle.
"""

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .competition import IMAGE_SIZE, SUBMISSION_COLUMNS
from .data import check_ids, read_csv
from .errors import UserError
from .metrics import competition_score
from .rle import parse_rle, rle_decode, rle_encode

N_PIXELS = IMAGE_SIZE * IMAGE_SIZE
_SHOWN_IDS = 3  # how many offending ids an error message lists


def _first_ids(ids: Iterable[str]) -> str:
    """A short, stable listing of some ids for an error message."""
    ids = sorted(ids)
    shown = ", ".join(repr(i) for i in ids[:_SHOWN_IDS])
    return shown + (", ..." if len(ids) > _SHOWN_IDS else "")


def _check_rles(df: pd.DataFrame, name: str) -> None:
    """Every RLE must parse for a competition-sized image; report the first bad row's id."""
    for image_id, rle in zip(df["id"], df["rle_mask"], strict=True):
        try:
            parse_rle(rle, N_PIXELS)
        except UserError as exc:
            raise UserError(f"{name}: id {image_id!r}: {exc}") from None


def _check_id_set(df: pd.DataFrame, expected: Iterable[str], name: str, allow_extra: bool) -> None:
    """The file's ids must be the expected set (or a superset of it when `allow_extra`)."""
    expected, found = set(expected), set(df["id"])
    missing, extra = expected - found, found - expected
    problems = []
    if missing:
        problems.append(f"{len(missing)} expected id(s) missing ({_first_ids(missing)})")
    if extra and not allow_extra:
        problems.append(f"{len(extra)} unexpected id(s) ({_first_ids(extra)})")
    if problems:
        raise UserError(f"{name}: " + "; ".join(problems))


def validate_submission(
    df_or_path: pd.DataFrame | str | os.PathLike,
    expected_ids: Iterable[str] | None = None,
    *,
    allow_extra: bool = False,
    name: str | None = None,
) -> pd.DataFrame:
    """Check a submission (a DataFrame or a CSV path) and return it as a DataFrame of strings.

    Checks: header exactly `id,rle_mask`; ids non-empty and unique; every RLE valid; and, given
    `expected_ids`, the same id set (extra ids tolerated when `allow_extra`). `name` labels the
    errors for a DataFrame (a path labels them by itself).
    """
    if isinstance(df_or_path, pd.DataFrame):
        df, name = df_or_path, name or "submission"
    else:
        df, name = read_csv(df_or_path), name or str(df_or_path)
    if tuple(df.columns) != SUBMISSION_COLUMNS:
        header = ",".join(str(c) for c in df.columns)
        raise UserError(f"{name}: header is {header!r}, expected {','.join(SUBMISSION_COLUMNS)!r}")
    df = df.astype(str)
    check_ids(df["id"], name, file_names=False)
    _check_rles(df, name)
    if expected_ids is not None:
        _check_id_set(df, expected_ids, name, allow_extra)
    return df


def _to_rle(mask_or_rle: str | np.ndarray, image_id: str) -> str:
    """An RLE string as is, or a competition-sized mask (H, W) or (H, W, 1) encoded."""
    if isinstance(mask_or_rle, str):
        return mask_or_rle
    mask = np.asarray(mask_or_rle)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"mask for id {image_id!r} has shape {mask.shape}, expected 101x101")
    return rle_encode(mask)


def write_submission(
    path: str | os.PathLike, ids: Sequence[str], masks_or_rles: Sequence[str | np.ndarray]
) -> pd.DataFrame:
    """Validate and atomically write a submission with rows in the order of `ids`.

    `masks_or_rles` holds, per id, an RLE string or a binary mask (a batch array works too).
    Nothing is written unless the whole submission is valid. Returns the written DataFrame.
    """
    ids = [str(i) for i in ids]
    if len(ids) != len(masks_or_rles):
        raise UserError(f"{path}: {len(ids)} ids but {len(masks_or_rles)} masks")
    rles = [_to_rle(m, i) for i, m in zip(ids, masks_or_rles, strict=True)]
    df = pd.DataFrame({"id": ids, "rle_mask": rles}, columns=list(SUBMISSION_COLUMNS))
    df = validate_submission(df, name=str(path))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def read_truth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a train.csv-format truth file into {id: uint8 0/1 mask (101, 101)}, validated."""
    df = validate_submission(path)
    return {i: rle_decode(r) for i, r in zip(df["id"], df["rle_mask"], strict=True)}


def score_submission_file(
    submission_path: str | os.PathLike, truth_path: str | os.PathLike
) -> tuple[float, list[str]]:
    """Score a submission file against a truth file; return (score, notes for the user).

    The submission must be valid and contain every truth id; ids absent from the truth are
    ignored (with a note), so a full test-set submission can be scored on a labelled subset.
    """
    truth = read_truth(truth_path)
    if not truth:
        raise UserError(f"{truth_path}: no images to score against")
    df = validate_submission(submission_path, truth.keys(), allow_extra=True)
    rles = dict(zip(df["id"], df["rle_mask"], strict=True))
    ids = list(truth)
    notes = [f"{Path(submission_path).name}: {len(df)} rows; truth: {len(ids)} images"]
    if len(df) > len(ids):
        notes.append(f"note: ignoring {len(df) - len(ids)} submission id(s) not in the truth")
    truth_masks = np.stack([truth[i] for i in ids])
    pred_masks = np.stack([rle_decode(rles[i]) for i in ids])
    return competition_score(truth_masks, pred_masks), notes
