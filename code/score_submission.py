"""Score a submission CSV against a truth CSV (train.csv format) with the competition metric.

Usage: python code/score_submission.py SUBMISSION.csv --truth TRUTH.csv

The submission must be valid and contain every truth id (other ids are ignored, with a note).
The last line printed is the score alone, e.g. `0.812345`, for scripts to read.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.errors import run_cli  # noqa: E402
from tgssalt.submission import score_submission_file  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: a submission path and the truth path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submission", type=Path, help="submission CSV (id,rle_mask)")
    parser.add_argument("--truth", type=Path, required=True, help="truth CSV (id,rle_mask)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Validate the submission, score it, and print the score as the last line."""
    args = parse_args(argv)
    score, notes = score_submission_file(args.submission, args.truth)
    for note in notes:
        print(note)
    print(f"{score:.6f}")


if __name__ == "__main__":
    run_cli(main)
