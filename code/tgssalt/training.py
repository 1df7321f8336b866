"""Compiling and fitting one training stage with stock Keras callbacks.

Stage 1 trains with BCE (or focal) loss; stage 2 continues from stage 1's best weights with the
Lovasz hinge. Each stage keeps its best epoch by the validation competition score (`val_score`),
stops early on a plateau and lowers the learning rate before that, or, with `schedule` "cosine",
follows cosine cycles and keeps each cycle's best epoch as a snapshot (`snapshots.py`). Either
schedule may start with a linear warm-up; the optimizer may clip each gradient's norm and keep
an EMA of the weights (`averaging.py`).
"""

import math
from pathlib import Path

import keras

from .atomic import atomic_path, write_text
from .averaging import ema_options, ema_weights, keep_training_weights
from .config import StageConfig
from .device import jit_compile_setting
from .keras_metrics import CompetitionScore
from .losses import get_loss
from .models.heads import is_packed
from .snapshots import cosine_scheduler, warmup_factor

# Optimizer name -> factory taking the learning rate and the common optimizer options
# (`clipnorm`, `use_ema`, `ema_momentum`).
OPTIMIZERS = {
    "adam": lambda lr, **kw: keras.optimizers.Adam(learning_rate=lr, **kw),
    "adamw": lambda lr, **kw: keras.optimizers.AdamW(learning_rate=lr, weight_decay=1e-4, **kw),
    "sgd": lambda lr, **kw: keras.optimizers.SGD(
        learning_rate=lr, momentum=0.9, nesterov=True, **kw
    ),
    "rmsprop": lambda lr, **kw: keras.optimizers.RMSprop(learning_rate=lr, **kw),
}

MONITOR = "val_score"


def make_optimizer(stage: StageConfig) -> keras.optimizers.Optimizer:
    """The stage's optimizer with its gradient clipping (`clipnorm`, 0: none) and weight EMA
    (`ema_momentum`, 0: none)."""
    options = {"clipnorm": stage.clipnorm or None, **ema_options(stage)}
    optimizer = OPTIMIZERS[stage.optimizer](stage.learning_rate, **options)
    if optimizer.use_ema:
        keep_training_weights(optimizer)
    return optimizer


def compile_stage(model: keras.Model, stage: StageConfig) -> None:
    """Compile `model` (which outputs logits) with the stage's loss, optimizer and score metric."""
    model.compile(
        optimizer=make_optimizer(stage),
        loss=get_loss(stage.loss, is_packed(model), stage.empty_mask_weight),
        metrics=[CompetitionScore(from_logits=True, name="score")],
        jit_compile=jit_compile_setting(),
    )
    # Build the optimizer's slots now, not inside the first traced train step: TensorFlow
    # traces a function that creates variables twice, and creating them in graph mode is slow
    # (together about 30 s of a CPU run's first epoch for the demo's U-Net).
    model.optimizer.build(model.trainable_variables)


def trim_epoch_log(csv_log: Path, epochs: int) -> None:
    """Keep the header and the first `epochs` rows of a stage's CSV log. A run killed after
    CSVLogger wrote an epoch's row but before its resume checkpoint was saved repeats that
    epoch on resume; without this, the epoch would be logged twice."""
    if csv_log.is_file():
        lines = csv_log.read_text().splitlines(keepends=True)
        if len(lines) > epochs + 1:
            write_text(csv_log, "".join(lines[: epochs + 1]))


def stage_callbacks(
    stage: StageConfig,
    best_weights: Path,
    csv_log: Path,
    tb_dir: Path | None,
    extra: list | None = None,
    best_so_far: float | None = None,
    logged_epochs: int = 0,
) -> list:
    """ModelCheckpoint (best weights), the schedule's callbacks, CSVLogger, TensorBoard.

    `best_so_far` carries the best score across the frozen and unfrozen phases of a stage (and
    across a crash and its resume), so the checkpoint never replaces a better earlier epoch;
    `logged_epochs` (the epochs the stage's record holds) continues the CSV log after them.
    """
    checkpoint = AtomicModelCheckpoint(
        str(best_weights),
        monitor=MONITOR,
        mode="max",
        save_best_only=True,
        save_weights_only=True,
        initial_value_threshold=best_so_far,
    )
    callbacks = [checkpoint, *schedule_callbacks(stage)]
    if stage.ema_momentum > 0:
        callbacks.insert(0, keras.callbacks.SwapEMAWeights())  # validate the EMA weights
    if logged_epochs:
        trim_epoch_log(csv_log, logged_epochs)
    callbacks.append(keras.callbacks.CSVLogger(str(csv_log), append=logged_epochs > 0))
    if tb_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tb_dir)))
    return callbacks + list(extra or [])


def schedule_callbacks(stage: StageConfig) -> list:
    """The stage's learning-rate schedule: cosine cycles (`snapshots.py`), or the original's
    ReduceLROnPlateau with EarlyStopping; either after the stage's warm-up, if any."""
    if stage.schedule == "cosine":
        return [cosine_scheduler(stage)]
    warmup = [plateau_warmup(stage)] if stage.warmup_epochs else []
    return [
        *warmup,
        keras.callbacks.ReduceLROnPlateau(
            monitor=MONITOR,
            mode="max",
            factor=stage.reduce_lr_factor,
            patience=stage.reduce_lr_patience,
            min_lr=stage.min_lr,
            verbose=1,
        ),
        keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=stage.early_stopping_patience, verbose=1
        ),
    ]


def plateau_warmup(stage: StageConfig) -> keras.callbacks.LearningRateScheduler:
    """The warm-up of a plateau schedule: `learning_rate` x (epoch + 1) / `warmup_epochs` in the
    warm-up epochs, `learning_rate` in the epoch after; then the rate is left to
    ReduceLROnPlateau (whose reductions during the warm-up are overridden). Stateless: it
    resumes at any epoch, as the learning rate itself is in the resume checkpoint."""

    def rate(epoch: int, current: float) -> float:
        if epoch <= stage.warmup_epochs:
            return stage.learning_rate * warmup_factor(epoch, stage)
        return current

    return keras.callbacks.LearningRateScheduler(rate)


def set_encoder_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze a pretrained encoder (layers named `encoder*`); a no-op without one."""
    for layer in model.layers:
        if layer.name.startswith("encoder"):
            layer.trainable = trainable


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint (of weights only) that writes through `atomic.atomic_path`, so a kill
    during the write never leaves a best-weights file that looks complete but is not; with an
    EMA of the weights it saves the EMA (`averaging.ema_weights`), the weights validated."""

    def _save_model(self, epoch, batch, logs):
        if self._should_save_model(epoch, batch, logs, self.filepath):
            with ema_weights(self.model), atomic_path(self.filepath) as tmp:
                self.model.save_weights(tmp, overwrite=True)


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop training after an epoch whose loss is NaN/inf, remembering which, and keep the
    resume checkpoint of the last good epoch untouched (`fold_training.train_stage` then fails
    clearly).

    Checked once an epoch, not every batch, so it never forces a device sync inside the epoch.
    Goes before `ResumeCheckpoint` in the callback list.
    """

    def __init__(self, resume_checkpoint=None):
        super().__init__()
        self.resume_checkpoint, self.bad_epoch, self.bad_loss = resume_checkpoint, None, None

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.bad_epoch, self.bad_loss = epoch + 1, loss
            self.model.stop_training = True
            if self.resume_checkpoint is not None:
                self.resume_checkpoint.skip = True
