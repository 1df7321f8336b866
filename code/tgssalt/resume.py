"""Resuming a stage after a crash: a checkpoint written atomically at the end of every epoch.

`models/<run>-<stage>.resume.npz` holds everything the next epoch needs, in one file so that it
is never half-written: the model's variables (weights, batch-norm statistics, dropout RNG
states), the optimizer's variables (moments, step count, learning rate, the weights' EMA), the
arrays of callbacks that keep some (the SWA average) and a JSON record of the next epoch, the
history so far, the plateau counters of ReduceLROnPlateau and EarlyStopping and the
augmentation epoch. `train_fold.py` rerun with the same arguments continues from it; a stage
that finished is recorded as complete and is skipped.
"""

import dataclasses
import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from .atomic import atomic_path
from .errors import UserError

_STATE = "state_json"
# Callback attributes that carry a plateau's progress across epochs.
CALLBACK_STATE = {
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
    "EarlyStopping": ("wait", "best", "best_epoch"),
}


@dataclasses.dataclass
class StageRecord:
    """A stage's progress, saved as JSON in its resume checkpoint: the next epoch to train, the
    history so far, the training seconds, the frozen/unfrozen phase it is in, whether the stage
    is complete, (as of the last checkpoint) the plateau counters and augmentation epoch, and
    the outcome of the stage's SWA (`fold_training.try_swa`), if it has one."""

    next_epoch: int = 0
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    trainable: bool | None = None
    complete: bool = False
    callbacks: dict = dataclasses.field(default_factory=dict)
    augmentation_epoch: int = 0
    swa: dict = dataclasses.field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """How many epochs the history holds."""
        return len(self.history.get("loss", []))

    @classmethod
    def from_json(cls, text: str) -> "StageRecord":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in fields})


class Checkpoint(NamedTuple):
    """What a resume checkpoint holds: the record, the model's and optimizer's arrays and the
    callbacks' arrays by name (`ResumeCheckpoint`)."""

    record: StageRecord
    model: list
    optimizer: list
    callbacks: dict | None = None


def save_state(
    path: Path, model: keras.Model, record: StageRecord, callbacks: dict | None = None
) -> None:
    """Write the model's and optimizer's variables, `record` and the callbacks' named arrays to
    `path`, atomically."""
    arrays = {f"model_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
    if model.optimizer is not None and model.optimizer.built:
        for i, v in enumerate(model.optimizer.variables):
            arrays[f"optimizer_{i}"] = keras.ops.convert_to_numpy(v)
    arrays.update({f"callback_{name}": a for name, a in (callbacks or {}).items()})
    arrays[_STATE] = np.array(json.dumps(dataclasses.asdict(record)))
    with tempfile.TemporaryDirectory(prefix="tgs-resume-") as local:
        written = Path(local) / "resume.npz"
        np.savez(written, **arrays)
        copy_verified(written, path)


def copy_verified(source: Path, target: Path) -> None:
    """Copy `source` onto `target` so that `target` is always a whole checkpoint, also on an
    Azure ML read-write blob mount, where a rename is a copy then a delete, not atomic.

    The zip is written on local disk (a zip writer seeks, which a blob mount serves badly),
    copied to a temporary name beside the target, checked to have the full size, and only then
    renamed over the target. A node that dies during the copy leaves the previous checkpoint
    untouched (and a hidden `.tmp` file that nothing reads); one that dies during the mount's
    rename (a server-side blob copy, then a delete) leaves the previous or the new checkpoint,
    plus that `.tmp` file. Were the target ever unreadable, `load_state` says so and
    `--restart` trains the fold from scratch.
    """
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        if tmp.stat().st_size != source.stat().st_size:
            raise OSError(f"{target}: the resume checkpoint was copied short")


def load_state(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`, or None when there is none."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:
            record = StageRecord.from_json(str(npz[_STATE]))
            model = [npz[f"model_{i}"] for i in range(_count(npz, "model_"))]
            optimizer = [npz[f"optimizer_{i}"] for i in range(_count(npz, "optimizer_"))]
            names = [n for n in npz.files if n.startswith("callback_")]
            callbacks = {n.removeprefix("callback_"): npz[n] for n in names}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise UserError(
            f"{path}: unreadable resume checkpoint ({exc}); rerun with --restart"
        ) from None
    return Checkpoint(record, model, optimizer, callbacks)


def _count(npz, prefix: str) -> int:
    return sum(1 for name in npz.files if name.startswith(prefix))


def restore_variables(path: Path, variables: list, arrays: list) -> None:
    """Assign saved arrays to variables, refusing a checkpoint made by another model."""
    shapes = [tuple(v.shape) for v in variables]
    if shapes != [a.shape for a in arrays]:
        raise UserError(
            f"{path}: the resume checkpoint does not match this model ({len(arrays)} saved "
            f"variables vs {len(variables)}); rerun with --restart to train from scratch"
        )
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def restore_training(path: Path, model: keras.Model, saved: Checkpoint, same_phase: bool) -> None:
    """Load saved model variables and, within the same frozen/unfrozen phase, the optimizer's."""
    restore_variables(path, model.variables, saved.model)
    if same_phase and saved.optimizer:
        model.optimizer.build(model.trainable_variables)
        restore_variables(path, model.optimizer.variables, saved.optimizer)


def callback_states(callbacks: list) -> dict:
    """The plateau counters of the callbacks in `CALLBACK_STATE`, by class name."""
    states = {}
    for callback in callbacks:
        name = type(callback).__name__
        if name in CALLBACK_STATE:
            states[name] = {a: _jsonable(getattr(callback, a)) for a in CALLBACK_STATE[name]}
    return states


def _jsonable(value):
    """Python scalars for JSON (callbacks may hold numpy floats; `best` may be +-inf)."""
    return None if value is None else float(value)


def callback_arrays(callbacks: list) -> dict:
    """The named arrays of the callbacks that keep state in arrays (`resume_arrays()`)."""
    arrays = {}
    for callback in callbacks:
        if hasattr(callback, "resume_arrays"):
            arrays.update(callback.resume_arrays())
    return arrays


def set_callback_states(callbacks: list, states: dict) -> None:
    """Put saved plateau counters back (after the callbacks' own `on_train_begin` resets)."""
    for callback in callbacks:
        for attribute, value in states.get(type(callback).__name__, {}).items():
            if value is not None and attribute in ("wait", "cooldown_counter", "best_epoch"):
                value = int(value)
            setattr(callback, attribute, value)


class ResumeCheckpoint(keras.callbacks.Callback):
    """Save the stage's resume checkpoint at every epoch end; restore counters at train begin.

    Goes last in the callback list, so it sees the learning rate and counters after
    ReduceLROnPlateau and EarlyStopping have acted on the epoch, and the arrays of the siblings
    that keep some (`resume_arrays()`, e.g. `averaging.SwaAverage`). `record` is the stage's running
    record that `fold_training.train_stage` keeps and this callback extends; `restore` is the
    record of the checkpoint being resumed (its counters and augmentation epoch), if any.
    """

    def __init__(
        self, path: Path, record: StageRecord, batches, siblings: list, restore=None
    ) -> None:
        super().__init__()
        self.path, self.record, self.batches = path, record, batches
        self.siblings, self.restore = siblings, restore
        self.skip = False  # set by StopOnNonFinite: never checkpoint a broken epoch

    def on_train_begin(self, logs=None):
        self._started, self._seconds = time.perf_counter(), self.record.seconds
        if self.restore:
            set_callback_states(self.siblings, self.restore.callbacks)
            self.batches.set_epoch(self.restore.augmentation_epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self.skip:
            return
        record = self.record
        for key, value in (logs or {}).items():
            record.history.setdefault(key, []).append(float(value))
        record.seconds = self._seconds + time.perf_counter() - self._started
        record.next_epoch = epoch + 1
        record.complete = False
        record.callbacks = callback_states(self.siblings)
        record.augmentation_epoch = self.batches.epoch
        save_state(self.path, self.model, record, callback_arrays(self.siblings))
