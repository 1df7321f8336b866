"""The levers of a steadier training recipe on tiny models: linear warm-up, gradient clipping,
an EMA of the weights (validated, checkpointed, resumed) and SWA of the last epochs (the mean
of the epochs' weights, batch-norm statistics recomputed, kept only if it validates as well,
resumed exactly)."""

import dataclasses

import keras
import numpy as np
import pytest
from crashing import Crash, CrashAtEpoch
from tgssalt import fold_training
from tgssalt.averaging import SwaAverage, ema_weights, recompute_batch_norm
from tgssalt.config import StageConfig, resolve_config
from tgssalt.errors import UserError
from tgssalt.layout import RunOutputs
from tgssalt.resume import load_state
from tgssalt.snapshots import cosine_lr
from tgssalt.training import compile_stage, make_optimizer, schedule_callbacks, stage_callbacks


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def weights(model) -> list[np.ndarray]:
    return [numpy(w) for w in model.weights]


def tiny_data(n=16, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, 1), dtype=np.float32)
    return x, (x > 0.6).astype("float32")


def tiny_model(size=16):
    """Convolution, batch norm, dropout, logits: the layers averaging has to deal with, in a
    model that compiles in a second (the U-Net's are exercised by the other test files)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 1))
    h = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    h = keras.layers.Dropout(0.1)(keras.layers.ReLU()(keras.layers.BatchNormalization()(h)))
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, name="logits")(h))


# ---- warm-up and clipping ---------------------------------------------------------------


def test_plateau_warmup_starts_at_a_fraction_then_hands_over():
    stage = StageConfig(learning_rate=0.3, warmup_epochs=3, schedule="plateau")
    [warmup] = schedule_callbacks(stage)[:1]
    rates = [warmup.schedule(e, 0.01) for e in range(6)]
    np.testing.assert_allclose(rates, [0.1, 0.2, 0.3, 0.3, 0.01, 0.01])  # 0.01: plateau's rate
    assert len(schedule_callbacks(dataclasses.replace(stage, warmup_epochs=0))) == 2


def test_cosine_warmup_scales_the_cycle():
    stage = StageConfig(
        epochs=6, cycles=2, learning_rate=1e-3, min_lr=0.0, schedule="cosine", warmup_epochs=2
    )
    [scheduler] = schedule_callbacks(stage)
    rates = [scheduler.schedule(e, None) for e in range(6)]
    np.testing.assert_allclose(rates[:2], [0.5e-3, 0.75e-3 * 1.0])  # lr/2 x cos 1, then cos
    np.testing.assert_allclose(rates[2:], [cosine_lr(e, stage) for e in range(2, 6)])


def test_warmup_rate_is_the_rate_trained_with():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    stage = StageConfig(learning_rate=0.2, warmup_epochs=4)
    model.compile(optimizer=make_optimizer(stage), loss="mse")
    x = np.ones((4, 2), "float32")
    history = model.fit(x, x[:, :1], epochs=5, verbose=0, callbacks=schedule_callbacks(stage)[:1])
    np.testing.assert_allclose(history.history["learning_rate"], [0.05, 0.1, 0.15, 0.2, 0.2])


def test_clipnorm_and_ema_reach_the_optimizer():
    plain = make_optimizer(StageConfig(optimizer="sgd"))
    assert plain.clipnorm is None and not plain.use_ema
    tuned = make_optimizer(StageConfig(optimizer="adamw", clipnorm=1.5, ema_momentum=0.9))
    assert tuned.clipnorm == 1.5 and tuned.use_ema and tuned.ema_momentum == 0.9


def test_clipnorm_bounds_the_step():
    """SGD with momentum, lr 1, one step on a huge gradient: the step's norm is the clip norm."""
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(inputs))
    model.compile(
        optimizer=make_optimizer(StageConfig(optimizer="sgd", clipnorm=0.5, learning_rate=1.0)),
        loss="mse",
    )
    before = numpy(model.weights[0]).copy()
    model.fit(np.full((1, 1), 100.0, "float32"), np.zeros((1, 1), "float32"), verbose=0)
    step = numpy(model.weights[0]) - before
    assert np.linalg.norm(step) == pytest.approx(0.5 * (1 + 0.9), rel=1e-5)  # nesterov: 1 + m


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"warmup_epochs": 30}, "'stage1.warmup_epochs' must be 0..epochs"),
        ({"clipnorm": -1}, "'stage1.clipnorm' must be >= 0"),
        ({"ema_momentum": 1.0}, "'stage1.ema_momentum' must be in [0, 1)"),
        ({"swa_epochs": 3, "ema_momentum": 0.9}, "'stage1.swa_epochs' does not apply"),
        (
            {"swa_epochs": 3, "schedule": "cosine", "cycles": 2},
            "'stage1.swa_epochs' does not apply: not with cosine cycles",
        ),
    ],
)
def test_bad_or_conflicting_levers_are_refused(stage, message):
    with pytest.raises(UserError) as info:
        resolve_config({"stage1": stage})
    assert message in str(info.value)


# ---- EMA --------------------------------------------------------------------------------


class Probe(keras.callbacks.Callback):
    """Records, at each epoch end, the model's (training) weights and the optimizer's EMA."""

    def __init__(self):
        super().__init__()
        self.raw, self.ema = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.raw.append(weights(self.model))
        with ema_weights(self.model):
            self.ema.append(weights(self.model))


def fit_with_checkpoint(tmp_path, ema_momentum: float, epochs=3):
    """A tiny model fitted under `stage_callbacks`; returns (model, probe, best-weights path,
    history)."""
    model, (x, y) = tiny_model(), tiny_data()
    stage = StageConfig(epochs=epochs, learning_rate=0.01, ema_momentum=ema_momentum)
    compile_stage(model, stage)
    best = tmp_path / f"ema{ema_momentum}.weights.h5"
    probe = Probe()
    callbacks = stage_callbacks(stage, best, tmp_path / f"log{ema_momentum}.csv", None, [probe])
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=epochs,
        validation_data=(x, y),
        verbose=0,
        callbacks=callbacks,
        shuffle=False,
    )
    return model, probe, best, history.history


def test_ema_weights_are_validated_and_checkpointed_and_fit_keeps_training_weights(tmp_path):
    model, probe, best, history = fit_with_checkpoint(tmp_path, 0.9)
    epoch = history["val_score"].index(max(history["val_score"]))  # the first best is saved
    saved = keras.models.clone_model(model)
    saved.load_weights(best)
    ema, raw = probe.ema[epoch], probe.raw[epoch]
    trainable = [i for i, w in enumerate(model.weights) if w.trainable]
    for i in trainable:
        np.testing.assert_array_equal(weights(saved)[i], ema[i])
    assert any(not np.allclose(ema[i], raw[i]) for i in trainable)
    for got, want in zip(weights(model), probe.raw[-1], strict=True):
        np.testing.assert_array_equal(got, want)  # no copy of the EMA into the model at the end
    x, y = tiny_data()
    with ema_weights(model):
        score = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)["score"]
    assert history["val_score"][-1] == pytest.approx(score, abs=1e-6)  # validated: the EMA


def test_without_ema_the_training_weights_are_checkpointed(tmp_path):
    model, probe, best, history = fit_with_checkpoint(tmp_path, 0.0)
    epoch = history["val_score"].index(max(history["val_score"]))
    saved = keras.models.clone_model(model)
    saved.load_weights(best)
    for got, want in zip(weights(saved), probe.raw[epoch], strict=True):
        np.testing.assert_array_equal(got, want)
    assert np.array_equal(probe.ema[epoch][0], probe.raw[epoch][0])  # no EMA: nothing swapped


# ---- SWA --------------------------------------------------------------------------------


def test_swa_is_the_mean_of_the_last_epochs_weights_and_resumes_from_its_arrays():
    model, (x, y) = tiny_model(), tiny_data()
    compile_stage(model, StageConfig(learning_rate=0.01))
    swa, probe = SwaAverage(first=2), Probe()
    model.fit(x, y, batch_size=4, epochs=5, verbose=0, callbacks=[probe, swa], shuffle=False)
    assert swa.count == 3
    for i, mean in enumerate(swa.mean):
        np.testing.assert_allclose(mean, np.mean([w[i] for w in probe.raw[2:]], 0), atol=1e-6)
    again = SwaAverage.from_arrays(2, swa.resume_arrays())
    assert again.count == 3 and all(
        np.array_equal(a, b) for a, b in zip(again.mean, swa.mean, strict=True)
    )
    fresh = SwaAverage.from_arrays(2, {})
    assert fresh.count == 0 and fresh.mean is None


def test_batch_norm_statistics_are_the_mean_over_training_batches():
    inputs = keras.Input((3,))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(inputs))
    x = np.random.default_rng(0).normal(2.0, 3.0, (10, 3)).astype("float32")
    assert recompute_batch_norm(model, x, batch_size=4) == 3  # batches of 4, 4, 2
    batches = [x[:4], x[4:8], x[8:]]
    np.testing.assert_allclose(
        numpy(norm.moving_mean), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5
    )
    np.testing.assert_allclose(
        numpy(norm.moving_variance), np.mean([b.var(0) for b in batches], 0), rtol=1e-5
    )
    assert norm.momentum == 0.99  # put back


STAGE = {"epochs": 4, "batch_size": 4, "learning_rate": 0.01}


def train_averaged_stage(root, lever: dict, crash_at, monkeypatch):
    """Stage 1 with `lever` on 16 tiny images, crashing after epoch `crash_at` and resuming;
    returns the complete stage's checkpoint."""
    monkeypatch.setattr(fold_training, "MlflowMetrics", CrashAtEpoch)
    config, (x, y) = resolve_config({"stage1": {**STAGE, **lever}}), tiny_data()
    out = RunOutputs(root, "avg-cvfold0")
    out.prepare()
    for attempt in (crash_at, None):
        CrashAtEpoch.at = attempt
        model = tiny_model()
        try:
            fold_training.train_stage(model, "stage1", config, out, (x, y), (x[:8], y[:8]))
            break
        except Crash:
            pass
    return load_state(out.resume("stage1"))


@pytest.mark.parametrize("lever", [{"swa_epochs": 2}, {"ema_momentum": 0.9}], ids=["swa", "ema"])
def test_averaged_stage_resumes_exactly(tmp_path, monkeypatch, lever):
    """A crash at the end of the last epoch, before its checkpoint (the one before holds SWA's
    mean of one epoch, and the EMA), and a resume give the uninterrupted run's history, SWA
    outcome and final weights."""
    whole = train_averaged_stage(tmp_path / "whole", lever, None, monkeypatch)
    resumed = train_averaged_stage(tmp_path / "crashed", lever, 3, monkeypatch)
    assert resumed.record.history == whole.record.history
    assert resumed.record.swa == whole.record.swa
    for got, want in zip(resumed.model, whole.model, strict=True):
        np.testing.assert_array_equal(got, want)
    if "swa_epochs" in lever:
        swa, scores = whole.record.swa, whole.record.history["val_score"]
        assert swa["epochs"] == 2 and 0 <= swa["score"] <= 1
        assert swa["used"] == (swa["score"] >= max(scores))
