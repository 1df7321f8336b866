"""Write a synthetic data set in the Kaggle TGS Salt layout, to run the pipeline without real data.

    python code/make_synthetic_data.py [--out DIR] [--train N] [--test M] [--seed S] [--overwrite]

The default folder is the repository's data folder. A folder that already holds a data set
(train.csv, train/, test/, ...) is refused unless --overwrite is given, so real competition data
is never replaced by accident.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.errors import UserError, run_cli  # noqa: E402
from tgssalt.paths import DEFAULT_DATA_FOLDER  # noqa: E402
from tgssalt.synthetic import COVERAGE_BANDS, generate_dataset  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises `UserError` (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_DATA_FOLDER,
        help=f"folder to write the data set to (default {DEFAULT_DATA_FOLDER})",
    )
    parser.add_argument("--train", type=int, default=1000, help="training images (default 1000)")
    parser.add_argument("--test", type=int, default=400, help="test images (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a data set already in --out (deletes its PNGs)",
    )
    args = parser.parse_args(argv)
    if args.train < 0 or args.test < 0:
        raise UserError(f"--train and --test must be 0 or more, not {args.train} and {args.test}")
    if args.seed < 0:
        raise UserError(f"--seed must be 0 or more, not {args.seed}")
    return args


def summary(out: Path, counts: dict[str, int | float]) -> str:
    """One line: how many images went where, the training masks' coverage mix, and the time."""
    n_train = max(int(counts["train"]), 1)
    mix = ", ".join(f"{100 * counts[name] / n_train:.0f}% {name}" for name, *_ in COVERAGE_BANDS)
    return (
        f"wrote {counts['train']} train + {counts['test']} test images to {out} "
        f"(masks: {mix}) in {counts['seconds']:.1f} s"
    )


def main(argv: list[str] | None = None) -> None:
    """Generate the data set and print a one-line summary."""
    args = parse_args(argv)
    counts = generate_dataset(
        args.out, n_train=args.train, n_test=args.test, seed=args.seed, overwrite=args.overwrite
    )
    print(summary(args.out, counts))


if __name__ == "__main__":
    run_cli(main)
