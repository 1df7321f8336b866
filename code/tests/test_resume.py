"""Reliability of training: a kill -9 mid-stage resumes (conftest.py's shared run; its scores are
checked in test_train_fold.py), a resume continues exactly as an uninterrupted run, a finished
fold is not retrained, the same fold twice is refused, NaN losses stop cleanly, and resume
checkpoints refuse another model or config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import KILLED_FOLD, STAGE1_EPOCHS, run_command, train_command
from crashing import CrashAtEpoch, train_stage1
from tgssalt import fold_training
from tgssalt.config import AugmentationConfig, resolve_config
from tgssalt.errors import UserError
from tgssalt.layout import RunOutputs
from tgssalt.lock import fold_lock
from tgssalt.pipeline import AugmentedBatches
from tgssalt.resume import StageRecord, load_state, restore_training, save_state

RUN = f"tiny-3-cvfold{KILLED_FOLD}"


def test_killed_run_resumes_where_it_stopped(e2e):
    out = e2e["resumed"].stdout
    assert "resuming the interrupted run" in out
    assert f"stage1: {STAGE1_EPOCHS} epochs of bce with adam lr 0.003; resuming at epoch" in out
    epochs = pd.read_csv(e2e["root"] / "outputs" / "figures" / f"{RUN}-stage1-log.csv")["epoch"]
    assert epochs.tolist() == list(range(STAGE1_EPOCHS)), "an epoch was lost or logged twice"
    assert not list((e2e["root"] / "outputs").rglob("*.resume.npz")), "checkpoints not cleared"
    assert not list((e2e["root"] / "outputs").rglob(f"{RUN}.lock")), "lock not released"


def test_same_fold_twice_is_refused(e2e):
    twin = e2e["twin"]
    assert twin.returncode != 0
    assert f"{RUN}: already being trained by process" in twin.stderr
    assert "Traceback" not in twin.stderr


def test_finished_fold_is_not_retrained(e2e):
    again = run_command(train_command(e2e["root"], KILLED_FOLD))
    assert again.returncode == 0
    assert "already complete" in again.stdout and "Epoch" not in again.stdout


# ---- unit tests: no training subprocess ------------------------------------------------


def test_batches_depend_only_on_seed_epoch_and_index():
    x = np.arange(20 * 4 * 4, dtype=np.float32).reshape(20, 4, 4, 1)
    aug = AugmentationConfig(hflip=True, brightness=0.1, contrast=0.1)
    first = AugmentedBatches(x, x.copy(), 4, aug, seed=1)
    first.on_epoch_end(), first.on_epoch_end()
    later = [first[i] for i in (2, 0)]
    fresh = AugmentedBatches(x, x.copy(), 4, aug, seed=1)
    fresh.set_epoch(2)
    fresh[1]  # asking for another batch first changes nothing
    for got, want in zip([fresh[2], fresh[0]], later, strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    fresh.set_epoch(3)
    assert not np.array_equal(fresh[0][1], later[1][1])


def _tiny_model() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dropout(0.5)(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def test_checkpoint_round_trip_restores_weights_and_optimizer(tmp_path):
    x, y = np.ones((8, 4), "float32"), np.ones((8, 1), "float32")
    model = _tiny_model()
    model.fit(x, y, epochs=2, verbose=0)
    save_state(tmp_path / "s.resume.npz", model, StageRecord(next_epoch=2))
    other = _tiny_model()
    saved = load_state(tmp_path / "s.resume.npz")
    restore_training(tmp_path / "s.resume.npz", other, saved, same_phase=True)
    assert saved.record == StageRecord(next_epoch=2)
    for a, b in zip(
        model.variables + model.optimizer.variables,
        other.variables + other.optimizer.variables,
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(other.optimizer.iterations) == 2


def test_checkpoint_of_another_model_is_refused(tmp_path):
    model = _tiny_model()
    save_state(tmp_path / "s.resume.npz", model, StageRecord())
    inputs = keras.Input((5,))
    wider = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    wider.compile(optimizer="adam", loss="mse")
    with pytest.raises(UserError, match="does not match this model.*--restart"):
        restore_training(
            tmp_path / "s.resume.npz", wider, load_state(tmp_path / "s.resume.npz"), True
        )


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "s.resume.npz"
    save_state(path, _tiny_model(), StageRecord())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="unreadable resume checkpoint"):
        load_state(path)


def test_resume_with_another_config_is_refused(tmp_path):
    out = RunOutputs(tmp_path, "r-1-cvfold0")
    out.prepare()
    config = resolve_config({})
    (tmp_path / "models" / "r-1-cvfold0-config.json").write_text(json.dumps(config.to_dict()))
    (tmp_path / "models" / "r-1-cvfold0-stage1.resume.npz").write_bytes(b"x")
    assert out.check_resumable(config)
    with pytest.raises(UserError, match=r"another config \(seed: 5678 -> 1\).*--restart"):
        out.check_resumable(resolve_config({"seed": 1}))
    out.start_over()
    assert not out.check_resumable(resolve_config({"seed": 1}))


def test_lock_refuses_live_holder_and_takes_over_dead_one(tmp_path, monkeypatch, capsys):
    lock = tmp_path / "f.lock"
    refused = pytest.raises(UserError, match=f"already being trained by process {os.getpid()}")
    with fold_lock(lock, "run-a"), refused, fold_lock(lock, "run-a"):
        pass
    assert not lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "job": ""}))
    with fold_lock(lock, "run-a"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "taking over the lock" in capsys.readouterr().out
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "job": "job-7"}))
    with pytest.raises(UserError, match="on elsewhere"), fold_lock(lock, "run-a"):
        pass
    monkeypatch.setenv("AZUREML_RUN_ID", "job-7")  # the same preempted Azure job, restarted
    with fold_lock(lock, "run-a"):
        pass


class _NanAfterFirstEpoch(AugmentedBatches):
    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return (x * np.nan if self.epoch >= 2 else x), y


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(fold_training, "AugmentedBatches", _NanAfterFirstEpoch)
    monkeypatch.setattr(fold_training, "MlflowMetrics", CrashAtEpoch)  # no MLflow run here
    monkeypatch.setattr(CrashAtEpoch, "at", None)
    config = resolve_config(
        {"model": {"start_filters": 4, "depth": 2}, "stage1": {"epochs": 4, "batch_size": 8}}
    )
    out = RunOutputs(tmp_path, "nan-cvfold0")
    out.prepare()
    rng = np.random.default_rng(0)
    x = rng.random((16, 101, 101, 1), dtype=np.float32)
    y = (x > 0.5).astype("float32")
    model = fold_training.build_model(config)
    with pytest.raises(UserError, match=r"loss became nan in epoch 2.*--restart"):
        fold_training.train_stage(model, "stage1", config, out, (x, y), (x[:8], y[:8]))
    state = load_state(out.resume("stage1")).record
    assert state.next_epoch == 1 and not state.complete
    assert all(np.isfinite(state.history["loss"]))


def _stage1_losses(root: Path, crash_at: int | None) -> list[float]:
    user = {
        "input": {"size": 32},
        "model": {"start_filters": 4, "depth": 2, "dropout": 0.3},
        "stage1": {"epochs": 4, "batch_size": 8},
    }
    out = train_stage1(root, "exact-cvfold0", user, crash_at)[2]
    return load_state(out.resume("stage1")).record.history["loss"]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch):
    """Weights, optimizer moments, dropout RNG and augmentation all come back: same losses."""
    monkeypatch.setattr(fold_training, "MlflowMetrics", CrashAtEpoch)
    whole = _stage1_losses(tmp_path / "whole", None)
    resumed = _stage1_losses(tmp_path / "crashed", 2)
    assert len(whole) == 4
    assert resumed == whole


def test_resume_trims_an_epoch_logged_after_the_last_checkpoint(tmp_path):
    """Killed between CSVLogger's row and the resume checkpoint: the repeated epoch is logged
    once."""
    from tgssalt.training import trim_epoch_log

    log = tmp_path / "stage1-log.csv"
    log.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n")  # epoch 2 logged, not checkpointed
    trim_epoch_log(log, 2)
    assert log.read_text() == "epoch,loss\n0,0.9\n1,0.8\n"
    trim_epoch_log(log, 5)  # fewer rows than epochs: nothing to trim
    assert log.read_text() == "epoch,loss\n0,0.9\n1,0.8\n"
