"""Cross-validation splits stratified by salt coverage class, as the original did.

The coverage class is `ceil(coverage * 10)` (0 = empty, 10 = almost full), so each fold gets the
same mix of empty, small and large masks. Splits are shuffled with a fixed seed: the same config
gives the same folds on every machine, which the fold ensemble relies on.
"""

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from .errors import UserError
from .metrics import coverage_class


def split_indices(
    masks: np.ndarray, folds: int, fold: int | None, seed: int, validation_split: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices for one CV fold, or one stratified split when `fold` is None."""
    classes = _mergeable_classes(coverage_class(masks), max(folds, 2))
    if fold is None or folds == 1:
        if fold not in (None, 0):
            raise UserError(f"--cv-currentfold {fold} is out of range: the config has 1 fold")
        index = np.arange(len(masks))
        try:
            return tuple(
                train_test_split(
                    index, test_size=validation_split, stratify=classes, random_state=seed
                )
            )
        except ValueError as exc:  # too few images for a stratified split of this size
            raise UserError(
                f"{len(masks)} labelled images are too few for a stratified "
                f"validation split of {validation_split} ({exc})"
            ) from None
    if not 0 <= fold < folds:
        raise UserError(
            f"--cv-currentfold {fold} is out of range: the config has {folds} folds "
            f"(0..{folds - 1})"
        )
    if len(masks) < folds:
        raise UserError(f"{len(masks)} labelled images are too few for {folds} folds")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(masks)), classes))[fold]


def _mergeable_classes(classes: np.ndarray, min_count: int) -> np.ndarray:
    """Merge coverage classes too rare to stratify (fewer members than folds) into a neighbour."""
    classes = classes.copy()
    for value in range(classes.max(), 0, -1):
        if 0 < (classes == value).sum() < min_count:
            classes[classes == value] = value - 1
    if 0 < (classes == 0).sum() < min_count and (classes > 0).any():
        classes[classes == 0] = classes[classes > 0].min()
    return classes
