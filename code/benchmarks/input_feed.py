"""Training-step time of a config's model (`demo.json`'s U-Net by default) fed from numpy
arrays, from the pipeline's `keras.utils.PyDataset` (`AugmentedBatches`) as fold training feeds
it (with `RestoreMallocThresholds`), and from the same PyDataset as Keras feeds it by default;
each in a fresh process, on the current backend.

    python code/benchmarks/input_feed.py [--images 448] [--epochs 3] [--rounds 2]
    python code/benchmarks/input_feed.py --config best.json --images 96 --rounds 1
    TF_ENABLE_ONEDNN_OPTS=0 python code/benchmarks/input_feed.py
    KERAS_BACKEND=jax python code/benchmarks/input_feed.py

Each round runs the three feeds, one after the other, in new processes (in one process the first
feed's trace changes the speed of the next); a feed trains `--epochs` epochs on random images
and reports the median step time of the epochs after the first (which includes tracing). The
last lines are the ratios of each PyDataset feed to arrays (medians over the rounds). On
TensorFlow, Keras feeds a PyDataset through `tf.data.Dataset.from_generator`, whose op changes
glibc's malloc thresholds (`tgssalt/allocator.py`), which slows TensorFlow's Eigen CPU kernels
(`TF_ENABLE_ONEDNN_OPTS=0`) and hardly its oneDNN ones (the package's default); on JAX it
iterates the PyDataset in Python.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]
FEEDS = ("arrays", "pydataset", "pydataset_keras_default")


def step_seconds(feed: str, images: int, epochs: int, config_name: str) -> float:
    """Median training-step seconds of epochs 2.. of a fresh model fed by `feed`. Runs in a
    child process only: the parent never imports Keras, so no trace of its own can interfere."""
    sys.path.insert(0, str(CODE))
    import tgssalt  # noqa: F401  (TensorFlow's CPU defaults, set before Keras loads it)

    # isort: split
    import keras
    import numpy as np
    from tgssalt.allocator import RestoreMallocThresholds
    from tgssalt.config import load_config
    from tgssalt.models import build_model
    from tgssalt.pipeline import AugmentedBatches
    from tgssalt.training import compile_stage

    config = load_config(CODE / "train-config" / config_name)
    model = build_model(config)
    compile_stage(model, config.stage1)
    size, batch = config.input.size, config.stage1.batch_size
    x = np.random.default_rng(0).random((images, size, size, 1), dtype=np.float32)
    y = (x > 0.5).astype("float32")
    data = {"x": x, "y": y, "batch_size": batch}
    if feed != "arrays":
        data = {"x": AugmentedBatches(x, y, batch, config.augmentation, seed=0)}
    restore = [RestoreMallocThresholds()] if feed == "pydataset" else []
    starts, steps = [], []
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda b, logs: starts.append(time.perf_counter()),
        on_train_batch_end=lambda b, logs: steps.append(time.perf_counter() - starts[-1]),
    )
    model.fit(**data, epochs=epochs, verbose=0, callbacks=[*restore, timer])
    per_epoch = -(-images // batch)
    return float(np.median(steps[per_epoch:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=448)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default="demo.json", help="a file in code/train-config")
    parser.add_argument("--feed", choices=FEEDS, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.feed:
        print(json.dumps(step_seconds(args.feed, args.images, args.epochs, args.config)))
        return
    medians = {feed: [] for feed in FEEDS}
    for round_ in range(args.rounds):
        for feed in FEEDS:
            command = [sys.executable, __file__, "--feed", feed, f"--images={args.images}"]
            command += [f"--epochs={args.epochs}", f"--config={args.config}"]
            out = subprocess.run(command, capture_output=True)
            seconds = json.loads(out.stdout.decode().strip().splitlines()[-1])
            medians[feed].append(seconds)
            print(f"round {round_ + 1} {feed:23s} {seconds:.3f} s/step", flush=True)
    median = {feed: sorted(times)[len(times) // 2] for feed, times in medians.items()}
    for feed in FEEDS[1:]:
        print(f"{feed} / arrays step time: {median[feed] / median['arrays']:.2f}x")


if __name__ == "__main__":
    main()
