"""Command-line pieces shared by the scripts in `code/`: the data and outputs folder flags."""

import argparse
from pathlib import Path

from .paths import DEFAULT_DATA_FOLDER, DEFAULT_OUTPUTS_FOLDER


def add_folder_arguments(parser: argparse.ArgumentParser) -> None:
    """`--data-folder` and `--outputs-folder`, the original's flags, with the repo's defaults."""
    parser.add_argument(
        "--data-folder",
        type=Path,
        default=DEFAULT_DATA_FOLDER,
        help="Kaggle-layout data folder, or a parent holding it as data/ "
        f"(default {DEFAULT_DATA_FOLDER})",
    )
    add_outputs_folder_argument(parser)


def add_outputs_folder_argument(parser: argparse.ArgumentParser) -> None:
    """`--outputs-folder` alone, for scripts that read no data (the Azure ML ones)."""
    parser.add_argument(
        "--outputs-folder",
        type=Path,
        default=DEFAULT_OUTPUTS_FOLDER,
        help=f"where outputs go (default {DEFAULT_OUTPUTS_FOLDER})",
    )


def fold_list(text: str) -> list[int]:
    """argparse type for `--folds 0,1,3`."""
    try:
        folds = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of folds"
        ) from None
    if not folds or folds[0] < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: folds are numbers >= 0, e.g. 0,1,3")
    return folds


def add_folds_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """`--folds 0,1,3`: the cross-validation folds to `what` (default: all)."""
    parser.add_argument(
        "--folds", type=fold_list, default=None, help=f"comma-separated folds to {what}"
    )
