"""Command-line pieces shared by the scripts in `code/`: the folder, fold and job flags."""

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


def number_list(what: str, example: str):
    """An argparse type for a comma-separated list of `what` (numbers >= 0), sorted, unique."""

    def parse(text: str) -> list[int]:
        try:
            numbers = sorted({int(part) for part in text.split(",") if part.strip()})
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of {what}"
            ) from None
        if not numbers or numbers[0] < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: {what} are numbers >= 0, e.g. {example}")
        return numbers

    return parse


fold_list = number_list("folds", "0,1,3")  # `--folds 0,1,3`
seed_list = number_list("seeds", "1,2,3")  # `--seeds 1,2,3`


def add_folds_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """`--folds 0,1,3`: the cross-validation folds to `what` (default: all)."""
    parser.add_argument(
        "--folds", type=fold_list, default=None, help=f"comma-separated folds to {what}"
    )


def positive_int(text: str) -> int:
    """An argparse type for a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def add_jobs_argument(parser: argparse.ArgumentParser) -> None:
    """`--jobs N`: folds trained at once, each a child process (`fold_pool`)."""
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="folds to train at once, each as a child process on a GPU or an equal share of the "
        "CPU cores; 1 trains in this process (default: one per GPU with several GPUs, else 1)",
    )
