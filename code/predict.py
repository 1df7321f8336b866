"""Predict salt masks for a folder of seismic images with trained models.

    python code/predict.py --models unet-resnet-1 --images data/test/images --out masks/
    python code/predict.py --models a-stage2.keras b-stage2.keras --images in/ --out masks/

--models takes .keras files, a run name (its fold models in the outputs folder, with the rule of
its ensemble: threshold, hysteresis peak if kept, min_area) or a blend's run name (e.g.
a-1+b-1-blend: its members' fold models, weighted as the blend says, with its rule). Writes
<out>/<id>.png masks (0/255) and an RLE CSV.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.errors import run_cli  # noqa: E402
from tgssalt.paths import DEFAULT_OUTPUTS_FOLDER  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: models, input and output folders, and post-processing overrides."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        required=True,
        help=".keras files, or a run name (e.g. unet-resnet-1), or a blend (a-1+b-1-blend)",
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of images, any size")
    parser.add_argument("--out", type=Path, required=True, help="folder for the mask PNGs")
    parser.add_argument("--csv", type=Path, default=None, help="RLE CSV (default <out>/masks.csv)")
    parser.add_argument(
        "--outputs-folder",
        type=Path,
        default=DEFAULT_OUTPUTS_FOLDER,
        help=f"where run names are looked up (default {DEFAULT_OUTPUTS_FOLDER})",
    )
    parser.add_argument("--threshold", type=float, default=None, help="override the threshold")
    parser.add_argument("--min-area", type=int, default=None, help="override the min_area")
    parser.add_argument("--no-tta", action="store_true", help="skip horizontal-flip TTA")
    parser.add_argument("--batch-size", type=int, default=64, help="prediction batch size")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Predict the folder."""
    args = parse_args(argv)
    from tgssalt.predict_images import predict_images

    options = {
        "threshold": args.threshold,
        "min_area": args.min_area,
        "tta": not args.no_tta,
        "batch_size": max(1, args.batch_size),
    }
    predict_images(args.models, args.images, args.out, args.outputs_folder, args.csv, options)


if __name__ == "__main__":
    run_cli(main)
