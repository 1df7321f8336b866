"""Average a run's cross-validation folds, or blend several runs, into one Kaggle submission.

    python code/ensemble.py --config-file code/train-config/unet-resnet.json
    python code/ensemble.py --run unet-resnet-1
    python code/ensemble.py --run unet-resnet-1 best-1 --weights auto

Tunes the threshold and the minimum salt area on the folds' out-of-fold validation predictions,
and hysteresis's peak threshold when it wins on held-out halves, then writes
submissions/<run>-ensemble-submission.csv, models/<run>-ensemble.json and
figures/<run>-ensemble-threshold.png under the outputs folder. With several runs it also tunes
the runs' blend weights and writes submissions/<a>+<b>-blend-submission.csv,
models/<a>+<b>-blend.json and figures/<a>+<b>-blend-weights.png.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.cli import add_folder_arguments, add_folds_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402
from tgssalt.metrics import (  # noqa: E402
    MIN_AREA_GRID,
    THRESHOLD_GRID,
    min_area_grid,
    threshold_grid,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: which run (by config or name), folders and the search grids."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--config-file", nargs="+", help="the JSON training config(s) the folds were trained with"
    )
    which.add_argument(
        "--run", nargs="+", help="the run name(s) without -cvfold<k>, e.g. unet-resnet-1"
    )
    parser.add_argument(
        "--thresholds",
        nargs=3,
        type=float,
        default=list(THRESHOLD_GRID),
        metavar=("LOW", "HIGH", "COUNT"),
        help="threshold grid, numpy.linspace(LOW, HIGH, COUNT) "
        f"(default {_spaced(THRESHOLD_GRID)})",
    )
    parser.add_argument(
        "--min-areas",
        nargs=3,
        type=int,
        default=list(MIN_AREA_GRID),
        metavar=("FIRST", "LAST", "STEP"),
        help="min_area grid in pixels, FIRST to LAST inclusive by STEP "
        f"(default {_spaced(MIN_AREA_GRID)})",
    )
    add_folds_argument(parser, "use, e.g. 0,1,3 (default: all present)")
    add_blend_arguments(parser)
    add_folder_arguments(parser)
    return parser.parse_args(argv)


def _spaced(grid: tuple) -> str:
    """A grid's numbers as its flag takes them: `0.2 0.8 31`."""
    return " ".join(str(value) for value in grid)


def add_blend_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a blend of several runs: weights, their grid step, the blend's name."""
    parser.add_argument(
        "--weights",
        default=None,
        help="blend weights: auto (default: tuned out of fold, kept only if they beat equal "
        "weights on the halves cross-check), tuned, equal, or one per run, e.g. 0.6,0.4",
    )
    parser.add_argument(
        "--weight-step",
        type=float,
        default=None,
        help="grid step of the tuned weights on the simplex (default 0.1)",
    )
    parser.add_argument("--name", default=None, help="the blend's name (default: a+b)")


def main(argv: list[str] | None = None) -> None:
    """Resolve the runs' names, then ensemble one run's folds, or blend several runs."""
    args = parse_args(argv)
    from tgssalt.ensemble import run_ensemble
    from tgssalt.errors import UserError

    bases = args.run
    if args.config_file:
        from tgssalt.config import load_config
        from tgssalt.layout import base_run

        bases = [base_run(load_config(path)) for path in args.config_file]
    low, high, count = args.thresholds
    first, last, step = args.min_areas
    if count < 1 or count != int(count) or step < 1:
        raise UserError("--thresholds COUNT must be a whole number >= 1 and --min-areas STEP >= 1")
    thresholds = threshold_grid(low, high, count)
    min_areas = min_area_grid(first, last, step)
    if len(bases) > 1:
        from tgssalt.blend import DEFAULT_WEIGHT_STEP, run_blend

        options = {"weights": args.weights, "name": args.name}
        options["weight_step"] = args.weight_step or DEFAULT_WEIGHT_STEP
        run_blend(
            args.outputs_folder, bases, args.data_folder, thresholds, min_areas, args.folds, options
        )
        return
    if (args.weights, args.weight_step, args.name) != (None, None, None):
        raise UserError("--weights, --weight-step and --name apply to a blend of several runs")
    run_ensemble(args.outputs_folder, bases[0], args.data_folder, thresholds, min_areas, args.folds)


if __name__ == "__main__":
    run_cli(main)
