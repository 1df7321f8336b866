"""Check a submission CSV against sample_submission.csv, then upload it to the competition.

    python code/submit_kaggle.py outputs/submissions/unet-resnet-1-ensemble-submission.csv \
        --message "unet-resnet-1, 4-fold ensemble"

Needs Kaggle credentials (an API token in ~/.kaggle/kaggle.json, or KAGGLE_USERNAME and
KAGGLE_KEY) and the competition's rules accepted on its page; --dry-run only checks the file.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.errors import run_cli  # noqa: E402
from tgssalt.paths import DEFAULT_DATA_FOLDER  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the file, the submission's message, the data folder, --dry-run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submission", type=Path, help="submission CSV (id,rle_mask)")
    parser.add_argument("-m", "--message", default=None, help="description shown on Kaggle")
    parser.add_argument(
        "--data-folder",
        type=Path,
        default=DEFAULT_DATA_FOLDER,
        help=f"data folder holding sample_submission.csv (default {DEFAULT_DATA_FOLDER})",
    )
    parser.add_argument("--dry-run", action="store_true", help="check the file, upload nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Check, then upload unless --dry-run; the message defaults to the file's name."""
    args = parse_args(argv)
    from tgssalt.kaggle_submit import submit

    message = args.message or args.submission.stem
    submit(args.submission, message, args.data_folder, dry_run=args.dry_run)


if __name__ == "__main__":
    run_cli(main)
