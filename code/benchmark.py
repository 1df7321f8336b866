"""Training and prediction throughput of a config's model, optionally against smp (PyTorch).

    python code/benchmark.py --config-file code/train-config/unet-pretrained-encoder-resnet34.json
        [--batch-size 16] [--predict-batch-size 64] [--steps 8] [--repeats 3]
        [--precision float32|mixed_bfloat16] [--peer smp] [--pipeline]

Times, after a warm-up, training (model.fit) and flip-TTA prediction img/s on random data of the
config's input size, on the current Keras backend and device; `--peer smp` times the equivalent
segmentation_models_pytorch model in the same run, interleaved (pip install -r
requirements-bench.txt); `--pipeline` also times one epoch of the augmentation pipeline.
Prints a table, then one JSON line. See tgssalt/benchmark.py for what exactly is timed.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter quiet

from tgssalt.config import PRECISIONS, load_config  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="JSON training config")
    parser.add_argument("--batch-size", type=int, default=None, help="default: stage1's")
    parser.add_argument("--predict-batch-size", type=int, default=None, help="default: predict's")
    parser.add_argument("--steps", type=int, default=8, help="training batches per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default=None)
    parser.add_argument("--peer", choices=["smp"], default=None, help="also time this peer")
    parser.add_argument("--pipeline", action="store_true", help="also time the data pipeline")
    parser.add_argument("--pipeline-images", type=int, default=3000, help="images per epoch")
    args = parser.parse_args(argv)
    for name in ("batch_size", "predict_batch_size", "steps", "repeats", "pipeline_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_config(args.config_file)
    from tgssalt.benchmark import format_table, run_benchmark

    options = {
        "batch": args.batch_size or config.stage1.batch_size,
        "predict_batch": args.predict_batch_size or config.predict.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "precision": args.precision,
        "peer": args.peer,
        "pipeline": args.pipeline,
        "pipeline_images": args.pipeline_images,
    }
    summary = run_benchmark(config, options)
    print(format_table(summary))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    run_cli(main)
