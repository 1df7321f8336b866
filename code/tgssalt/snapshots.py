"""Cosine annealing with warm restarts and snapshot ensembling (Loshchilov & Hutter 2017;
Huang et al. 2017), as the best TGS solutions trained their last stage.

With `stageN.schedule` "cosine", the learning rate falls from `learning_rate` to `min_lr` along
a half cosine in each of `cycles` equal cycles, then jumps back up; ReduceLROnPlateau and
EarlyStopping are off, since the schedule is the plan. Each cycle's best epoch (by `val_score`)
is kept as a snapshot, and with more than one cycle the stage's exported model averages the
snapshots' probabilities: several minima of one run, an ensemble for the price of one training.
"""

import math
from pathlib import Path

import keras
from keras import layers

from .atomic import atomic_path
from .averaging import ema_weights
from .config import StageConfig
from .models import with_sigmoid


def cycle_length(stage: StageConfig) -> int:
    """Epochs per cosine cycle (the last cycle is shorter when `cycles` does not divide)."""
    return max(math.ceil(stage.epochs / stage.cycles), 1)


def cosine_lr(epoch: int, stage: StageConfig) -> float:
    """The learning rate of `epoch` (0-based): `learning_rate` at each cycle's start, falling
    along a half cosine towards `min_lr` at its end."""
    length = cycle_length(stage)
    progress = (epoch % length) / length
    low, high = stage.min_lr, stage.learning_rate
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * progress))


def warmup_factor(epoch: int, stage: StageConfig) -> float:
    """The linear warm-up's share of the scheduled rate in `epoch` (0-based): (epoch + 1) /
    `warmup_epochs` in the warm-up epochs, 1 after them and without a warm-up."""
    if stage.warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / stage.warmup_epochs)


def cosine_scheduler(stage: StageConfig) -> keras.callbacks.LearningRateScheduler:
    """The stock Keras scheduler driven by `cosine_lr` times the warm-up (stateless: it resumes
    at any epoch)."""
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _: cosine_lr(epoch, stage) * warmup_factor(epoch, stage)
    )


class SnapshotCheckpoint(keras.callbacks.Callback):
    """Save the weights of each cosine cycle's best epoch so far to `path_of(cycle)`, atomically
    (the EMA weights, with an EMA: those validated).

    `scores` are the validation scores of the stage's earlier epochs (from its record, so a
    resumed run or a later phase of the stage knows each cycle's best without extra state).
    """

    def __init__(self, path_of, length: int, scores: list, monitor: str = "val_score"):
        super().__init__()
        self.path_of, self.length, self.monitor = path_of, length, monitor
        self.scores = list(scores)

    def on_epoch_end(self, epoch, logs=None):
        del self.scores[epoch:]  # a resumed epoch replaces what an interrupted one logged
        score = float((logs or {}).get(self.monitor, float("-inf")))
        start = epoch - epoch % self.length
        earlier = self.scores[start:epoch]
        self.scores.append(score)
        if not earlier or score > max(earlier):
            with ema_weights(self.model), atomic_path(self.path_of(epoch // self.length)) as tmp:
                self.model.save_weights(tmp)


def snapshot_paths(path_of, stage: StageConfig) -> list[Path]:
    """The snapshot weight files of a cosine stage with several cycles, in cycle order."""
    if stage.schedule != "cosine" or stage.cycles < 2:
        return []
    count = math.ceil(stage.epochs / cycle_length(stage))
    return [p for p in (path_of(c) for c in range(count)) if p.is_file()]


def snapshot_ensemble(model: keras.Model, paths: list[Path]) -> keras.Model:
    """One probability model that averages `model`'s architecture under each snapshot's
    weights, so every consumer of a `.keras` file (evaluation, `predict.py`, the fold
    ensemble) uses the snapshots without knowing about them."""
    inputs = keras.Input(model.input.shape[1:], name="image")
    members = []
    for k, path in enumerate(paths, start=1):
        member = keras.Model.from_config(model.get_config())  # the architecture, uncompiled
        member.load_weights(path)
        probs = with_sigmoid(member)
        members.append(keras.Model(probs.input, probs.output, name=f"snapshot{k}")(inputs))
    average = layers.Average(name="salt_probability", dtype="float32")(members)
    return keras.Model(inputs, average, name=f"{model.name}_snapshots")
