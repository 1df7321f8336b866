"""Check that the GPU is used and time the toolkit on it, in one command.

    python code/gpu_check.py [--quick] [--allow-cpu] [--require-gpu]
        [--config-file PATH ...] [--size PX] [--batch-sizes 16,512] [--predict-batch-size N]
        [--precisions float32,mixed_bfloat16] [--steps 20] [--repeats 3] [--no-smp] [--no-speed]
        [--train-fold] [--fold-config PATH] [--fold K] [--data-folder DIR] [--outputs-folder DIR]
        [--predict N]

Prints the backend, devices, precision and versions; refuses (exit 2) when the JAX backend sees
only a CPU, unless --allow-cpu (with --require-gpu, any backend without a GPU). Then times, after a
warm-up, training and flip-TTA prediction of the ResNet34 U-Net at 128 px and of the from-scratch
U-Net (unet-resnet.json), fp32 and bf16, next to segmentation_models_pytorch when torch and smp
are installed. --train-fold trains one fold end to end (on --data-folder, else on synthetic data);
--predict N predicts N images x the folds with TTA. Prints a table, then one JSON line.
--quick shrinks everything to run on a CPU in about a minute. See docs/gpu.md.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter quiet

from tgssalt.config import PRECISIONS  # noqa: E402
from tgssalt.errors import UserError, run_cli  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `error:` line and exit 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def positive_list(text: str) -> list[int]:
    """argparse type for `--batch-sizes 16,512`."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers of at least 1, e.g. 16,512")
    return values


def precision_list(text: str) -> list[str]:
    """argparse type for `--precisions float32,mixed_bfloat16`."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    bad = [v for v in values if v not in PRECISIONS]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"{text!r}: precisions are a comma-separated list of {', '.join(PRECISIONS)}"
        )
    return values


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """What the speed table times, and how."""
    parser.add_argument(
        "--config-file",
        action="append",
        type=Path,
        help="config to time "
        "(repeatable; default: the ResNet34 U-Net at 128 px and unet-resnet.json)",
    )
    parser.add_argument("--size", type=int, default=None, help="input px for --config-file")
    parser.add_argument(
        "--batch-sizes",
        type=positive_list,
        default=None,
        help="training batches to time (default: each config's stage1 batch)",
    )
    parser.add_argument(
        "--predict-batch-size",
        type=int,
        default=None,
        help="default: the larger of the config's predict batch and the batch",
    )
    parser.add_argument(
        "--precisions",
        type=precision_list,
        default=["float32", "mixed_bfloat16"],
        help="default float32,mixed_bfloat16",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training batches per repeat (default 20; 2 with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats, the median reported (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--no-smp",
        dest="smp",
        action="store_false",
        help="do not time segmentation_models_pytorch even when installed",
    )
    parser.add_argument(
        "--no-speed",
        dest="speed",
        action="store_false",
        help="skip the speed table (only --train-fold / --predict)",
    )


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """The optional end-to-end fold and prediction."""
    parser.add_argument("--train-fold", action="store_true", help="train one fold end to end")
    parser.add_argument(
        "--fold-config",
        type=Path,
        default=None,
        help="config of --train-fold and --predict (default unet-resnet.json)",
    )
    parser.add_argument("--fold", type=int, default=None, help="fold to train (default 0)")
    parser.add_argument(
        "--data-folder",
        type=Path,
        default=None,
        help="Kaggle-layout data for --train-fold (default: synthetic data)",
    )
    parser.add_argument(
        "--outputs-folder",
        type=Path,
        default=None,
        help="where --train-fold writes (default: a temporary folder)",
    )
    parser.add_argument(
        "--predict",
        type=int,
        default=None,
        metavar="N",
        help="predict N random images x the folds with TTA",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: about a minute on a CPU")
    parser.add_argument("--allow-cpu", action="store_true", help="run JAX on a CPU anyway")
    parser.add_argument(
        "--require-gpu", action="store_true", help="refuse any backend without a GPU"
    )
    add_speed_arguments(parser)
    add_workload_arguments(parser)
    args = parser.parse_args(argv)
    for name in ("size", "predict_batch_size", "steps", "repeats", "predict"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    refuse_unused(args)
    return args


def refuse_unused(args: argparse.Namespace) -> None:
    """An option that would change nothing is refused rather than silently ignored."""
    speed = ("config_file", "size", "batch_sizes", "predict_batch_size", "steps", "repeats")
    unused = {
        "--no-speed: ": [n for n in speed if getattr(args, n) is not None]
        if not args.speed
        else [],
        "without --config-file: ": ["size"] if args.size and not args.config_file else [],
        "without --train-fold: ": [
            n for n in ("fold", "data_folder", "outputs_folder") if getattr(args, n) is not None
        ]
        if not args.train_fold
        else [],
        "without --train-fold or --predict: ": ["fold_config"]
        if args.fold_config and not (args.train_fold or args.predict)
        else [],
    }
    for why, names in unused.items():
        if names:
            flags = ", ".join(f"--{n.replace('_', '-')}" for n in names)
            raise UserError(f"{why}{flags} would change nothing; leave it out")
    if not (args.speed or args.train_fold or args.predict):
        raise UserError("--no-speed leaves nothing to do: add --train-fold or --predict N")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from tgssalt.gpu_check import run_gpu_check
    from tgssalt.gpu_report import format_report

    summary = run_gpu_check(args)
    print(format_report(summary))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    run_cli(main)
