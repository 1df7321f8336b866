"""From data to a submission: train every missing cross-validation fold, then ensemble them.

    python code/run_folds.py --config-file code/train-config/unet-resnet.json
    python code/run_folds.py --config-file code/train-config/best64-long.json \
        code/train-config/best64-longer.json

With several configs, every config's folds train, then each config's are ensembled, then their
runs are blended (`ensemble.py --run` with its defaults) into
outputs/submissions/<a>+<b>-blend-submission.csv.

Folds already complete (metrics and test predictions written) are skipped, so an interrupted run
resumes where it stopped. `--jobs N` trains N folds at once (of every config), each a child
process on a GPU or an equal share of the CPU cores; with several GPUs visible that is the
default, one fold per GPU.
The submission is outputs/submissions/<run>-ensemble-submission.csv (with --folds for only some
folds, <run>-folds0_1-ensemble-submission.csv).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.cli import add_folder_arguments, add_folds_argument, add_jobs_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the config(s), the folds, the jobs, the folders."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config-file",
        type=Path,
        nargs="+",
        required=True,
        help="JSON training config; several: train each, then blend their runs",
    )
    add_jobs_argument(parser)
    add_folds_argument(parser, "train and ensemble, e.g. 0,1 (default: all)")
    add_folder_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train the missing folds, then write the ensemble (or blend) submission."""
    args = parse_args(argv)
    from tgssalt.cross_validation import run_recipe

    run_recipe(args.config_file, args.data_folder, args.outputs_folder, args.jobs, args.folds)


if __name__ == "__main__":
    run_cli(main)
