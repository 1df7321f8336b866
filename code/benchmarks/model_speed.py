"""Training and prediction speed of the U-Net variants on this machine, measured in one run.

    python code/benchmarks/model_speed.py [--steps 12] [--batch-size 16] [--loss lovasz_hinge]

Prints img/s for each variant and its ratio to the first (the peer measured in the same run),
because absolute numbers on shared machines are noisy. Random data; no files are touched.
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
from tgssalt.losses import LOSSES, get_loss  # noqa: E402
from tgssalt.models import build_model, with_sigmoid  # noqa: E402
from tgssalt.models.heads import is_packed  # noqa: E402

CPU = {"start_filters": 8, "dropout": 0.2}
VARIANTS = [  # (label, config overrides, jit_compile)
    ("start_filters 16 (original), no XLA", {"model": {"start_filters": 16}}, False),
    ("start_filters 8 (cpu config), no XLA", {"model": CPU}, False),
    ("start_filters 8, XLA", {"model": CPU}, True),
    ("start_filters 8, mixed_bfloat16", {"model": {**CPU, "precision": "mixed_bfloat16"}}, False),
    ("start_filters 8, coord channels", {"model": CPU, "input": {"coord_channels": True}}, False),
    ("start_filters 8, deep supervision", {"model": {**CPU, "deep_supervision": True}}, False),
]


def measure(overrides: dict, jit: bool, steps: int, batch: int, loss: str) -> tuple[float, float]:
    """(train img/s, predict img/s of the probability model) after a warm-up of each."""
    model = build_model(resolve_config(overrides))
    model.compile(optimizer="adam", loss=get_loss(loss, is_packed(model)), jit_compile=jit)
    probs = with_sigmoid(model)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, 101, 101, 1), dtype=np.float32)
    y = (rng.random(x.shape) > 0.5).astype(np.float32)
    model.fit(x[: batch * 2], y[: batch * 2], batch_size=batch, verbose=0)
    probs.predict(x[:batch], batch_size=64, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, verbose=0)
    train = len(x) / (time.perf_counter() - started)
    started = time.perf_counter()
    probs.predict(x, batch_size=64, verbose=0)
    return train, len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--loss", choices=sorted(LOSSES), default="bce")
    args = parser.parse_args()
    print(
        f"backend {keras.backend.backend()}, batch {args.batch_size}, {args.steps} steps, "
        f"loss {args.loss}"
    )
    peer = None
    for label, overrides, jit in VARIANTS:
        train, predict = measure(overrides, jit, args.steps, args.batch_size, args.loss)
        peer = peer or (train, predict)
        print(
            f"{label:40s} train {train:6.1f} img/s ({train / peer[0]:4.2f}x)  "
            f"predict {predict:6.1f} img/s ({predict / peer[1]:4.2f}x)"
        )
        keras.mixed_precision.set_dtype_policy("float32")


if __name__ == "__main__":
    main()
