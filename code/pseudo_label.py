"""Make a pseudo-label set from a finished cross-validation run's test predictions.

    python code/pseudo_label.py --run unet-resnet-1

Keeps, per fold, the test images that fold's own model is confident about (by default a share
of at least --min-share of their pixels below LOW or above HIGH; see --criterion) with their
binarised masks, as the set outputs/pseudo/<root>-pseudo<round>.json (+ .csv,
-cvfold<k>.npz). A config trains with it through
`"data": {"pseudo_labels": "<root>-pseudo<round>"}`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.cli import add_folder_arguments  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the source run, the round, the selection and the threshold."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run",
        required=True,
        help="the cross-validation run (or its -ensemble), e.g. unet-resnet-1",
    )
    parser.add_argument(
        "--round", type=int, default=None, help="the round the set trains (default: the run's + 1)"
    )
    add_selection_arguments(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="binarise the masks at this probability, no minimum area (default: the run's "
        "ensemble threshold and min_area, else 0.5)",
    )
    add_folder_arguments(parser)
    return parser.parse_args(argv)


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """`--confidence LOW HIGH`, `--min-share`, `--criterion`: which test images become
    pseudo-labels."""
    parser.add_argument(
        "--confidence",
        nargs=2,
        type=float,
        default=[0.2, 0.8],
        metavar=("LOW", "HIGH"),
        help="a pixel is confident below LOW or above HIGH (default 0.2 0.8)",
    )
    parser.add_argument(
        "--min-share",
        type=float,
        default=0.95,
        help="keep an image when at least this share of its pixels is confident (share), or "
        "when its masks at LOW and HIGH overlap at least this much (salt_iou; default 0.95)",
    )
    parser.add_argument(
        "--criterion",
        default="share",
        help="share: most pixels outside the band (1st place's); salt_iou: masks with salt "
        "whose outline barely moves across the band (default share)",
    )


def main(argv: list[str] | None = None) -> None:
    """Make the set (or report it made already)."""
    args = parse_args(argv)
    from tgssalt.pseudo_labels import Selection, make_pseudo_labels

    selection = Selection(*args.confidence, args.min_share, args.criterion)
    make_pseudo_labels(
        args.outputs_folder, args.data_folder, args.run, args.round, selection, args.threshold
    )


if __name__ == "__main__":
    run_cli(main)
