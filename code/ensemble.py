"""Average a run's cross-validation folds into one Kaggle submission.

    python code/ensemble.py --config-file code/train-config/unet-resnet.json
    python code/ensemble.py --run unet-resnet-1

Tunes the threshold and the minimum salt area on the folds' out-of-fold validation predictions,
then writes submissions/<run>-ensemble-submission.csv, models/<run>-ensemble.json and
figures/<run>-ensemble-threshold.png under the outputs folder.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.cli import add_folder_arguments, add_folds_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: which run (by config or name), folders and the search grids."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config-file", help="the JSON training config the folds were trained with")
    which.add_argument("--run", help="the run name without -cvfold<k>, e.g. unet-resnet-1")
    parser.add_argument(
        "--thresholds",
        nargs=3,
        type=float,
        default=[0.2, 0.8, 31],
        metavar=("LOW", "HIGH", "COUNT"),
        help="threshold grid, numpy.linspace(LOW, HIGH, COUNT) (default 0.2 0.8 31)",
    )
    parser.add_argument(
        "--min-areas",
        nargs=3,
        type=int,
        default=[0, 300, 10],
        metavar=("FIRST", "LAST", "STEP"),
        help="min_area grid in pixels, FIRST to LAST inclusive by STEP (default 0 300 10)",
    )
    add_folds_argument(parser, "use, e.g. 0,1,3 (default: all present)")
    add_folder_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Resolve the run's name, then ensemble its folds."""
    args = parse_args(argv)
    import numpy as np
    from tgssalt.ensemble import run_ensemble
    from tgssalt.errors import UserError

    base = args.run
    if args.config_file:
        from tgssalt.config import load_config
        from tgssalt.layout import base_run

        base = base_run(load_config(args.config_file))
    low, high, count = args.thresholds
    first, last, step = args.min_areas
    if count < 1 or count != int(count) or step < 1:
        raise UserError("--thresholds COUNT must be a whole number >= 1 and --min-areas STEP >= 1")
    thresholds = np.linspace(low, high, int(count))
    run_ensemble(
        args.outputs_folder,
        base,
        args.data_folder,
        thresholds,
        np.arange(first, last + 1, step),
        args.folds,
    )


if __name__ == "__main__":
    run_cli(main)
