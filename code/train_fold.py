"""Train one cross-validation fold of a U-Net on the TGS salt data.

    python code/train_fold.py --config-file code/train-config/unet-resnet.json --cv-currentfold 0

Without --cv-currentfold, trains on a single stratified train/validation split. Rerun after a
crash, it resumes from the last complete epoch; a finished fold is not trained again
(--restart does both from scratch).
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter quiet

from tgssalt.cli import add_folder_arguments  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="JSON training config")
    parser.add_argument(
        "--cv-currentfold",
        type=int,
        default=None,
        help="cross-validation fold to train (0-based); omit for a single split",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="train from scratch: discard an interrupted run's checkpoints or a finished fold",
    )
    add_folder_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from tgssalt.config import load_config

    config = load_config(args.config_file)  # a malformed file fails before Keras is imported
    from tgssalt.fold_training import train_fold

    train_fold(config, args.cv_currentfold, args.data_folder, args.outputs_folder, args.restart)


if __name__ == "__main__":
    run_cli(main)
