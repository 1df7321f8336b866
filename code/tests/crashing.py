"""Training one stage in-process, optionally crashing at the end of a chosen epoch and rerunning
it as `train_fold.py` would: for the resume tests. Patch `fold_training.MlflowMetrics` with
`CrashAtEpoch` first (it also keeps MLflow out of these runs)."""

from pathlib import Path

import keras
import numpy as np
from tgssalt import fold_training
from tgssalt.config import resolve_config
from tgssalt.layout import RunOutputs


class Crash(Exception):
    pass


class CrashAtEpoch(keras.callbacks.Callback):
    """Stands in for MlflowMetrics; raises at the end of epoch `at` (before its checkpoint)."""

    at = None

    def __init__(self, *args):
        super().__init__()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise Crash


def train_stage1(root: Path, run: str, user_config: dict, crash_at: int | None, threshold=0.5):
    """Train stage 1 of `user_config` on 32 random images of its input size (masks: pixels above
    `threshold`), crashing after epoch `crash_at` and resuming; returns (model, config, outputs,
    images)."""
    config = resolve_config(user_config)
    rng = np.random.default_rng(0)
    size = config.input.size
    x = rng.random((32, size, size, 1), dtype=np.float32)
    y = (x > threshold).astype("float32")
    out = RunOutputs(root, run)
    out.prepare()
    for attempt in (crash_at, None):
        CrashAtEpoch.at = attempt
        keras.utils.set_random_seed(1)
        model = fold_training.build_model(config)
        try:
            fold_training.train_stage(model, "stage1", config, out, (x, y), (x[:8], y[:8]))
            break
        except Crash:
            pass
    return model, config, out, x
