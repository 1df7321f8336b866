"""Train configs' folds under several training seeds and print each fold's mean and std.

    python code/run_seeds.py --config-file code/train-config/best.json --seeds 5678,1,2 --folds 0
    python code/run_seeds.py --config-file BASELINE.json TECHNIQUE.json ... --seeds 5678,1,2

Each seed is a copy of the config with `seed` and `name` changed (`best-seed1-1-cvfold0`); the
config's own seed is the config itself. All copies share the config's folds. Complete folds are
not retrained and an interrupted one resumes, so rerunning the command continues. Folds train one
after another in this process, or `--jobs N` at once as child processes as in `run_folds.py`
(`--seeds 5678,1,2 --jobs 3`: three seeds of a fold together). With several configs (a baseline
first), it ends with a Markdown table: each config's mean and standard deviation per fold, its
change against the baseline and its minutes per fold.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.cli import add_folder_arguments, add_jobs_argument, fold_list, seed_list  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config-file",
        type=Path,
        nargs="+",
        required=True,
        help="JSON training config(s); with several, the first is the baseline of the table",
    )
    parser.add_argument(
        "--seeds", type=seed_list, required=True, help="comma-separated training seeds, e.g. 1,2,3"
    )
    parser.add_argument(
        "--folds", type=fold_list, default=[0], help="comma-separated folds (default: 0)"
    )
    add_jobs_argument(parser)
    add_folder_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from tgssalt.seeds import run_seeds

    run_seeds(
        args.config_file,
        args.seeds,
        args.folds,
        args.data_folder,
        args.outputs_folder,
        args.jobs,
    )


if __name__ == "__main__":
    run_cli(main)
