"""Weight averaging for a steadier final model: an exponential moving average of the weights
(EMA, the Keras optimizers' own `use_ema`) or stochastic weight averaging of a stage's last
epochs (SWA, Izmailov et al. 2018).

EMA (`stageN.ema_momentum` > 0): the optimizer updates an average of the trainable weights
after every step. Training steps move the raw weights; validation (`val_score`), the best-epoch
checkpoint and the cosine snapshots see the average, swapped in around them. Keras's `fit`
would end by copying the average into the model (`finalize_variable_values`); that is turned
off, so a stage's unfrozen phase continues from the raw weights whether or not a crash and a
resume came in between. The average lives in the optimizer's variables, which the resume
checkpoint saves. Batch-norm statistics are not trainable and are not averaged: the EMA
weights run with the current moving statistics, as in Keras.

SWA (`stageN.swa_epochs` N > 0): the mean of the weights at the end of the stage's last N
epochs. The averaged weights match none of the epochs' batch-norm statistics, so these are
recomputed with one pass over the training images; the average then replaces the best epoch
only if it scores at least as well on the validation set.
"""

import contextlib

import keras
import numpy as np


def ema_options(stage) -> dict:
    """The optimizer arguments for the stage's EMA; none when `ema_momentum` is 0 (off)."""
    if stage.ema_momentum <= 0:
        return {}
    return {"use_ema": True, "ema_momentum": stage.ema_momentum}


def keep_training_weights(optimizer: keras.optimizers.Optimizer) -> None:
    """Stop `fit` from copying the EMA into the model when it ends (see the module docstring):
    the model always holds its training weights outside `ema_weights` blocks."""
    optimizer.finalize_variable_values = lambda var_list: None


def uses_ema(model: keras.Model) -> bool:
    """Whether `model`'s (built) optimizer keeps an EMA of the weights."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # loss scaling
    return bool(getattr(optimizer, "use_ema", False) and optimizer.built)


@contextlib.contextmanager
def ema_weights(model: keras.Model):
    """Inside the block, `model` holds its optimizer's EMA weights (the training weights wait
    in the EMA's slots and are swapped back on exit); without EMA, nothing changes. Uses the
    swap of the stock `SwapEMAWeights` callback, which validation uses too."""
    if not uses_ema(model):
        yield
        return
    swap = keras.callbacks.SwapEMAWeights()
    swap.set_model(model)
    swap.on_test_begin()
    try:
        yield
    finally:
        swap.on_test_end()


class SwaAverage(keras.callbacks.Callback):
    """The running mean of `model.weights` at the ends of epochs `first` and later (the stage's
    last `swa_epochs`), in float32 like the weights.

    One instance serves all phases of a stage. `resume_arrays` is what the resume checkpoint
    saves of it and `from_arrays` rebuilds it, so a resumed stage averages the same epochs.
    """

    def __init__(self, first: int, mean: list | None = None, count: int = 0):
        super().__init__()
        self.first, self.mean, self.count = first, mean, count

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first:
            return
        weights = [keras.ops.convert_to_numpy(w) for w in self.model.weights]
        self.count += 1
        if self.mean is None:
            self.mean = weights
        else:
            for mean, weight in zip(self.mean, weights, strict=True):
                mean += (weight - mean) / np.asarray(self.count, mean.dtype)

    def resume_arrays(self) -> dict:
        """The state for the resume checkpoint: the count and the mean weights."""
        arrays = {"swa_count": np.asarray(self.count)}
        arrays.update({f"swa_{i}": w for i, w in enumerate(self.mean or [])})
        return arrays

    @classmethod
    def from_arrays(cls, first: int, arrays: dict | None) -> "SwaAverage":
        """An average resumed from `resume_arrays`' output (None or empty: a fresh one)."""
        if not arrays or "swa_count" not in arrays:
            return cls(first)
        count = int(arrays["swa_count"])
        mean = [arrays[f"swa_{i}"] for i in range(sum(k.startswith("swa_") for k in arrays) - 1)]
        return cls(first, [np.array(m) for m in mean] or None, count)

    def assign_to(self, model: keras.Model) -> None:
        """Put the averaged weights into `model`."""
        for variable, mean in zip(model.weights, self.mean, strict=True):
            variable.assign(mean)


def batch_norms(layer) -> list:
    """The trainable `BatchNormalization` layers in `layer`, nested models included."""
    found = []
    for child in getattr(layer, "layers", []):
        if isinstance(child, keras.layers.BatchNormalization):
            found += [child] if child.trainable else []
        else:
            found += batch_norms(child)
    return found


def recompute_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int) -> int:
    """Set every batch-norm layer's moving statistics to the mean of its batch statistics over
    `images` (in `batch_size` batches), in training mode as SWA does; returns the batches used.

    A momentum of (k-1)/k on the k-th batch makes Keras's moving-average update an exact
    running mean. The model is called eagerly, since the momentum is read at each call.
    """
    norms = batch_norms(model)
    if not norms:
        return 0
    saved = [norm.momentum for norm in norms]
    batches = range(0, len(images), batch_size)
    try:
        for k, start in enumerate(batches, start=1):
            for norm in norms:
                norm.momentum = (k - 1) / k
            model(images[start : start + batch_size], training=True)
    finally:
        for norm, momentum in zip(norms, saved, strict=True):
            norm.momentum = momentum
    return len(batches)
