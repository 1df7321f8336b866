"""Build time and size of every encoder backbone, and training speed against the from-scratch U-Net.

    python code/benchmarks/encoder_speed.py [--size 128] [--steps 8] [--batch-size 16]
    python code/benchmarks/encoder_speed.py --skip-build --train resnet34 resnext50

Part 1 builds each registered backbone under a U-Net decoder (random weights, the default
decoder width) and prints its build seconds and parameters. Part 2 times training img/s of the
original's unet_resnet and of each `--train` backbone's U-Net at `--size` px, in one run, as
ratios to the first, because absolute numbers on shared machines are noisy. Random data.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tgssalt  # noqa: E402, F401  (TensorFlow's CPU defaults, set before Keras loads it)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
from tgssalt.config import resolve_config  # noqa: E402
from tgssalt.losses import bce  # noqa: E402
from tgssalt.models import BACKBONES, build_model  # noqa: E402


def encoder_config(backbone: str | None, size: int, channels: int = 1) -> dict:
    """unet_resnet (backbone None) or a U-Net on `backbone`, random weights, `size` px."""
    user = {"input": {"size": size, "channels": channels}}
    if backbone:
        user["encoder"] = {"type": "Unet", "backbone": backbone, "weights": None}
    return resolve_config(user)


def build_table(size: int) -> None:
    """Seconds to build and parameters (encoder, total) of every backbone's U-Net."""
    print(f"{'backbone':18s} {'build s':>8s} {'encoder M':>10s} {'total M':>8s}")
    for name in BACKBONES:
        keras.backend.clear_session()
        started = time.perf_counter()
        model = build_model(encoder_config(name, size))
        seconds = time.perf_counter() - started
        encoder = model.get_layer("encoder").count_params() / 1e6
        print(f"{name:18s} {seconds:8.1f} {encoder:10.2f} {model.count_params() / 1e6:8.2f}")


def train_speed(backbone: str | None, size: int, steps: int, batch: int) -> float:
    """Training img/s after one warm-up epoch of two batches."""
    keras.backend.clear_session()
    model = build_model(encoder_config(backbone, size))
    model.compile(optimizer="adam", loss=bce)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, size, size, 1), dtype=np.float32)
    y = (rng.random(x.shape) > 0.5).astype(np.float32)
    model.fit(x[: batch * 2], y[: batch * 2], batch_size=batch, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, verbose=0)
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train", nargs="*", default=["resnet34"], choices=sorted(BACKBONES))
    parser.add_argument("--skip-build", action="store_true", help="only the training speeds")
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, {args.size} px")
    if not args.skip_build:
        build_table(args.size)
    peer = None
    for backbone in [None, *args.train]:
        speed = train_speed(backbone, args.size, args.steps, args.batch_size)
        peer = peer or speed
        label = f"unet {backbone}" if backbone else "unet_resnet (from scratch)"
        print(f"{label:28s} train {speed:6.1f} img/s ({speed / peer:4.2f}x)", flush=True)


if __name__ == "__main__":
    main()
