"""What a run's numbers depend on: train a tiny U-Net for 2 epochs and print its losses in full.

    TF_NUM_INTRAOP_THREADS=1 python code/benchmarks/determinism.py
    TF_NUM_INTRAOP_THREADS=2 python code/benchmarks/determinism.py
    ONEDNN_MAX_CPU_ISA=SSE41 TF_NUM_INTRAOP_THREADS=1 python code/benchmarks/determinism.py

Same machine, same thread count: the same losses, bit for bit. Another thread count, or another
CPU instruction set (oneDNN picks its kernels by it; `ONEDNN_MAX_CPU_ISA` emulates an older CPU),
sums in another order and changes the losses in the 5th digit; over a whole training those
differences grow into validation scores a few hundredths apart.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tgssalt  # noqa: E402, F401  (TensorFlow's CPU defaults, set before Keras loads it)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
from tgssalt.config import resolve_config  # noqa: E402
from tgssalt.losses import get_loss  # noqa: E402
from tgssalt.models import build_model  # noqa: E402


def main() -> None:
    keras.utils.set_random_seed(0)
    config = resolve_config({"input": {"size": 64}, "model": {"start_filters": 8, "depth": 3}})
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=get_loss("bce"), jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.random((64, 64, 64, 1), dtype=np.float32)
    y = (x > 0.6).astype("float32")
    losses = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history["loss"]
    conditions = {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "ONEDNN_MAX_CPU_ISA")}
    print(json.dumps({"backend": keras.backend.backend(), **conditions, "losses": losses}))


if __name__ == "__main__":
    main()
