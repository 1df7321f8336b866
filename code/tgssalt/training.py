"""Compiling and fitting one training stage with stock Keras callbacks.

Stage 1 trains with BCE (or focal) loss; stage 2 continues from stage 1's best weights with the
Lovasz hinge. Each stage keeps its best epoch by the validation competition score (`val_score`),
stops early on a plateau and lowers the learning rate before that.
"""

from pathlib import Path

import keras

from .device import jit_compile_setting
from .keras_metrics import CompetitionScore
from .losses import get_loss

OPTIMIZERS = {
    "adam": lambda lr: keras.optimizers.Adam(learning_rate=lr),
    "adamw": lambda lr: keras.optimizers.AdamW(learning_rate=lr, weight_decay=1e-4),
    "sgd": lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True),
    "rmsprop": lambda lr: keras.optimizers.RMSprop(learning_rate=lr),
}

MONITOR = "val_score"


def compile_stage(model: keras.Model, stage: dict) -> None:
    """Compile `model` (which outputs logits) with the stage's loss, optimizer and score metric."""
    model.compile(
        optimizer=OPTIMIZERS[stage["optimizer"]](stage["learning_rate"]),
        loss=get_loss(stage["loss"]),
        metrics=[CompetitionScore(from_logits=True, name="score")],
        jit_compile=jit_compile_setting(),
    )


def stage_callbacks(
    stage: dict,
    best_weights: Path,
    csv_log: Path,
    tb_dir: Path | None,
    extra: list | None = None,
    best_so_far: float | None = None,
) -> list:
    """ModelCheckpoint (best weights), ReduceLROnPlateau, EarlyStopping, CSVLogger, TensorBoard.

    `best_so_far` carries the best score across the frozen and unfrozen phases of a stage, so
    the checkpoint never replaces a better epoch of the earlier phase (whose log it appends to).
    """
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(best_weights),
            monitor=MONITOR,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor=MONITOR,
            mode="max",
            factor=stage["reduce_lr_factor"],
            patience=stage["reduce_lr_patience"],
            min_lr=stage["min_lr"],
            verbose=1,
        ),
        keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=stage["early_stopping_patience"], verbose=1
        ),
        keras.callbacks.CSVLogger(str(csv_log), append=best_so_far is not None),
    ]
    if tb_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tb_dir)))
    return callbacks + list(extra or [])


def set_encoder_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze a pretrained encoder (layers named `encoder*`); a no-op without one."""
    for layer in model.layers:
        if layer.name.startswith("encoder"):
            layer.trainable = trainable
