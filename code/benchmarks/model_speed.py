"""Training and prediction speed of the U-Net variants on this machine, measured in one run.

    python code/benchmarks/model_speed.py [--steps 12] [--batch-size 16]

Prints img/s for each variant and its ratio to the first (the peer measured in the same run),
because absolute numbers on shared machines are noisy. Random data; no files are touched.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from tgssalt.config import resolve_config  # noqa: E402
from tgssalt.losses import bce  # noqa: E402
from tgssalt.models import build_model  # noqa: E402

VARIANTS = [  # (label, model overrides, jit_compile)
    ("start_filters 16 (original), no XLA", {"start_filters": 16}, False),
    ("start_filters 8 (cpu config), no XLA", {"start_filters": 8, "dropout": 0.2}, False),
    ("start_filters 8, XLA", {"start_filters": 8, "dropout": 0.2}, True),
    ("start_filters 8, mixed_bfloat16", {"start_filters": 8, "precision": "mixed_bfloat16"}, False),
]


def measure(overrides: dict, jit: bool, steps: int, batch: int) -> tuple[float, float]:
    """(train img/s, predict img/s) after one warm-up step of each."""
    model = build_model(resolve_config({"model": overrides}))
    model.compile(optimizer="adam", loss=bce, jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, 101, 101, 1), dtype=np.float32)
    y = (rng.random(x.shape) > 0.5).astype(np.float32)
    model.fit(x[: batch * 2], y[: batch * 2], batch_size=batch, verbose=0)
    model.predict(x[:batch], batch_size=64, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, verbose=0)
    train = len(x) / (time.perf_counter() - started)
    started = time.perf_counter()
    model.predict(x, batch_size=64, verbose=0)
    return train, len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, batch {args.batch_size}, {args.steps} steps")
    peer = None
    for label, overrides, jit in VARIANTS:
        train, predict = measure(overrides, jit, args.steps, args.batch_size)
        peer = peer or (train, predict)
        print(
            f"{label:40s} train {train:6.1f} img/s ({train / peer[0]:4.2f}x)  "
            f"predict {predict:6.1f} img/s ({predict / peer[1]:4.2f}x)"
        )
        keras.mixed_precision.set_dtype_policy("float32")


if __name__ == "__main__":
    main()
