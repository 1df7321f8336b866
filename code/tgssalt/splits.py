"""The train/validation split of a config, stratified by salt coverage class, written once.

The coverage class is `ceil(coverage * 10)` (0 = empty, 10 = almost full), so each fold gets the
same mix of empty, small and large masks (StratifiedKFold, shuffled with the config's
`crossvalidation.split_seed`, as the original did; the top-level `seed` only drives training).
The first run that needs the split writes it, atomically, to `folds/<name % version>.csv`
(`layout.py`): one row per labelled image, `id,fold,coverage_class`, `fold` being the fold whose
validation set holds the image. Every fold, the ensemble and predict then read that file, so all
folds of a run use one split by construction, wherever they trained. A single train/validation split
(no --cv-currentfold) is `folds/<name % version>-holdout.csv`, its validation images in fold 0 and
the others in fold -1 (`TRAIN_ONLY`).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from .atomic import atomic_path
from .config import Config
from .data import read_csv
from .errors import UserError
from .metrics import coverage_class

COLUMNS = ("id", "fold", "coverage_class")
TRAIN_ONLY = -1  # the fold of a holdout split's training images: never validated


def check_fold(fold: int | None, folds: int) -> None:
    """`--cv-currentfold` must name one of the config's folds."""
    if fold is None:
        return
    if folds == 1 and fold != 0:
        raise UserError(f"--cv-currentfold {fold} is out of range: the config has 1 fold")
    if not 0 <= fold < folds:
        raise UserError(
            f"--cv-currentfold {fold} is out of range: the config has {folds} folds "
            f"(0..{folds - 1})"
        )


def is_holdout(fold: int | None, config: Config) -> bool:
    """A run without a CV fold, or of a one-fold config, trains on one stratified split."""
    return fold is None or config.crossvalidation.folds == 1


def assign_folds(
    masks: np.ndarray, folds: int, holdout: bool, seed: int, validation_split: float = 0.2
) -> np.ndarray:
    """Each image's validation fold: 0..folds-1, or for a holdout split 0 (validation) and
    `TRAIN_ONLY`."""
    classes = _mergeable_classes(coverage_class(masks), max(folds, 2))
    index = np.arange(len(masks))
    if holdout:
        try:
            _, valid = train_test_split(
                index, test_size=validation_split, stratify=classes, random_state=seed
            )
        except ValueError as exc:  # too few images for a stratified split of this size
            raise UserError(
                f"{len(masks)} labelled images are too few for a stratified "
                f"validation split of {validation_split} ({exc})"
            ) from None
        return np.where(np.isin(index, valid), 0, TRAIN_ONLY)
    if len(masks) < folds:
        raise UserError(f"{len(masks)} labelled images are too few for {folds} folds")
    assignment = np.empty(len(masks), dtype=np.int64)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, valid) in enumerate(skf.split(np.zeros(len(masks)), classes)):
        assignment[valid] = fold
    return assignment


def split_indices(assignment: np.ndarray, fold: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of `fold` (None: a holdout split's fold 0)."""
    valid = assignment == (fold or 0)
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def write_split(path: Path, ids: np.ndarray, masks: np.ndarray, assignment: np.ndarray) -> None:
    """Write the split file atomically."""
    frame = pd.DataFrame(
        {"id": ids, "fold": assignment, "coverage_class": coverage_class(masks)},
        columns=list(COLUMNS),
    )
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_split(path: Path) -> pd.DataFrame:
    """The split file as a frame of `COLUMNS` (fold and coverage_class as integers)."""
    frame = read_csv(path)
    if tuple(frame.columns) != COLUMNS:
        raise _stale(path, f"columns {','.join(frame.columns)}, expected {','.join(COLUMNS)}")
    try:
        return frame.astype({"fold": int, "coverage_class": int})
    except ValueError:
        raise _stale(path, "a fold or coverage class that is not a whole number") from None


def fold_assignment(
    path: Path, ids: np.ndarray, masks: np.ndarray, config: Config, fold: int | None
) -> np.ndarray:
    """Each image's validation fold (in `ids` order) for training `fold`: the split file's,
    checked against the data and the fold count; or, before the split is written, made from
    `config`'s `crossvalidation.split_seed`."""
    cv, holdout = config.crossvalidation, is_holdout(fold, config)
    folds = cv.folds
    check_fold(fold, folds)
    if not path.is_file():
        return assign_folds(masks, folds, holdout, cv.split_seed, cv.validation_split)
    frame = read_split(path)
    expected = {0, TRAIN_ONLY} if holdout else set(range(folds))
    if set(frame["fold"]) != expected:
        found = ", ".join(map(str, sorted(set(frame["fold"]))))
        raise _stale(path, f"folds {found}, expected {', '.join(map(str, sorted(expected)))}")
    if len(frame) != len(ids) or set(frame["id"]) != set(ids):
        raise _stale(path, f"{len(frame)} ids that are not the data's {len(ids)}")
    frame = frame.set_index("id").loc[ids]
    if not np.array_equal(frame["coverage_class"].to_numpy(), coverage_class(masks)):
        raise _stale(path, "coverage classes unlike the data's masks")
    return frame["fold"].to_numpy()


def save_split(path: Path, ids: np.ndarray, masks: np.ndarray, assignment: np.ndarray) -> None:
    """Write the split unless it is there already: the first run of a config writes it, and a
    second one racing it writes the same rows (atomically, so a reader never sees half)."""
    if not path.is_file():
        write_split(path, ids, masks, assignment)


def split_folds(path: Path) -> list[int]:
    """The cross-validation folds a split file holds."""
    return sorted(set(read_split(path)["fold"]) - {TRAIN_ONLY})


def validation_ids(path: Path, fold: int) -> set[str]:
    """The ids in fold `fold`'s validation set, as the split file says."""
    frame = read_split(path)
    return set(frame["id"][frame["fold"] == fold])


def _stale(path: Path, what: str) -> UserError:
    return UserError(
        f"{path}: this split has {what}; it was made for other data or another config: "
        "delete it to split again (or bump 'version' for a new run)"
    )


def _mergeable_classes(classes: np.ndarray, min_count: int) -> np.ndarray:
    """Merge coverage classes too rare to stratify (fewer members than folds) into a neighbour."""
    classes = classes.copy()
    for value in range(classes.max(), 0, -1):
        if 0 < (classes == value).sum() < min_count:
            classes[classes == value] = value - 1
    if 0 < (classes == 0).sum() < min_count and (classes > 0).any():
        classes[classes == 0] = classes[classes > 0].min()
    return classes
