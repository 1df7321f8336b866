"""Pseudo-label rounds in one command: folds, ensemble, pseudo-labels, the next round's folds...

    python code/run_rounds.py --config-file code/train-config/unet-resnet.json --rounds 1

Round 0 is `run_folds.py` on the config; each later round up to --rounds makes the pseudo-label
set from the previous round's folds (`pseudo_label.py`) and trains and ensembles the config with
it (run `<name % version>-pseudo<round>`). Finished steps are skipped, so a killed chain resumes
when rerun. The last round's submission is outputs/submissions/<run>-ensemble-submission.csv.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pseudo_label import add_selection_arguments  # noqa: E402
from tgssalt.cli import add_folder_arguments, add_jobs_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the config, the last round, the selection, the folders."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", type=Path, required=True, help="JSON training config")
    parser.add_argument(
        "--rounds", type=int, default=1, help="the last pseudo-label round to train (default 1)"
    )
    add_selection_arguments(parser)
    add_jobs_argument(parser)
    add_folder_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the chain of rounds."""
    args = parse_args(argv)
    from tgssalt.pseudo_labels import Selection
    from tgssalt.pseudo_rounds import run_rounds

    selection = Selection(*args.confidence, args.min_share, args.criterion)
    run_rounds(
        args.config_file,
        args.rounds,
        args.data_folder,
        args.outputs_folder,
        selection,
        args.jobs,
    )


if __name__ == "__main__":
    run_cli(main)
