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
    parser.add_argument(
        "--outputs-folder",
        type=Path,
        default=DEFAULT_OUTPUTS_FOLDER,
        help=f"where outputs go (default {DEFAULT_OUTPUTS_FOLDER})",
    )
