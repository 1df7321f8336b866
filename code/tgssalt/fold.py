"""Train, evaluate and predict one cross-validation fold: what `train_fold.py` runs.

Outputs go under the outputs folder, named `<name % version>-cvfold<k>` as the original did:
`models/` (one `.keras` per stage, the resolved config, the fold's metrics JSON), `figures/`,
`tb_logs/`, `predictions/` (validation and test probabilities) and `submissions/`.
"""

import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from . import figures
from .atomic import atomic_path
from .config import save_config
from .data import load_train, resolve_data_folder, test_ids
from .device import describe_device, tensorboard_available
from .errors import UserError
from .fold_outputs import FoldOutputs
from .folds import split_indices
from .inference import compile_for_prediction, predict_folder, predict_probs
from .lock import fold_lock
from .metrics import competition_score, threshold_search
from .models import build_model, with_sigmoid
from .paths import run_name
from .pipeline import AugmentedBatches, mask_targets, preprocess
from .predictions import prediction_meta, save_predictions
from .resume import ResumeCheckpoint, load_state, restore_training, restore_variables, save_state
from .snapshots import SnapshotCheckpoint, cycle_length, snapshot_ensemble, snapshot_paths
from .submission import write_submission
from .tracking import MlflowMetrics, log_fold_metrics, mlflow_run
from .training import (
    MONITOR,
    StopOnNonFinite,
    compile_stage,
    set_encoder_trainable,
    stage_callbacks,
)

STAGES = ("stage1", "stage2")


class StageResult(NamedTuple):
    """What a trained stage hands on: its seconds and epochs, and the probability model it
    exported (built once: a snapshot average is not cheap to assemble twice)."""

    timing: dict
    export: keras.Model


def train_fold(
    config: dict, fold: int | None, data_folder: Path, outputs_folder: Path, restart: bool = False
) -> dict:
    """Train both stages on one fold, pick the validation threshold, predict the test set.

    Every input is checked before anything is written. A fold that is already complete is not
    trained again; an interrupted one resumes from its last complete epoch (`restart` discards
    both). Returns the fold's metrics, also written to `models/<run>-metrics.json` and MLflow.
    """
    data_folder = resolve_data_folder(data_folder)
    out = FoldOutputs(Path(outputs_folder), run_name(config["name"], config["version"], fold))
    if out.complete() and not restart:
        print(f"{out.run}: already complete ({out.metrics}); nothing to do (--restart retrains)")
        return json.loads(out.metrics.read_text())
    ids_test = test_ids(data_folder)
    data = load_train(data_folder, config["input"]["channels"])
    cv = config["crossvalidation"]
    train_idx, valid_idx = split_indices(
        data.masks, cv["folds"], fold, config["seed"], cv["validation_split"]
    )
    out.prepare()
    with fold_lock(out.path("models", ".lock"), out.run):
        if restart:
            out.start_over()
        elif out.check_resumable(config):
            print(f"{out.run}: resuming the interrupted run (--restart starts over)")
        save_config(config, out.path("models", "-config.json"))
        _announce(out, len(train_idx), len(valid_idx), len(ids_test))
        split = (train_idx, valid_idx)
        metrics = _train_and_predict(config, out, data, split, data_folder, ids_test)
        out.clear_resume()
    return metrics


def _train_and_predict(config, out, data, split, data_folder, ids_test) -> dict:
    """Both stages, validation scoring and test prediction, inside one MLflow run."""
    train_idx, valid_idx = split
    keras.utils.set_random_seed(config["seed"])
    model = build_model(config)
    train_xy, valid_xy = _arrays(config, data, train_idx), _arrays(config, data, valid_idx)
    with mlflow_run(out.root, run_name(config["name"], config["version"], None), out.run, config):
        results = {s: train_stage(model, s, config, out, train_xy, valid_xy) for s in STAGES}
        trained = [result for result in results.values() if result]
        final = trained[-1].export if trained else with_sigmoid(model)
        prob_model = compile_for_prediction(final)
        metrics = evaluate(prob_model, config, out, data, valid_idx)
        metrics.update(
            predict_test(prob_model, config, out, data_folder, ids_test, metrics["threshold"])
        )
        metrics.update(_throughput(results, len(train_idx)))
        log_fold_metrics(metrics, out.metrics)
    return metrics


def _announce(out: FoldOutputs, n_train: int, n_valid: int, n_test: int) -> None:
    """Say what runs where, once, and warn when TensorBoard logs cannot be written."""
    print(f"{out.run}: {describe_device()}; {n_train} train / {n_valid} validation / {n_test} test")
    if not tensorboard_available():
        print(
            "warning: TensorBoard logs are skipped: Keras writes them through TensorFlow; "
            "install tensorflow-cpu and tensorboard to get them",
            file=sys.stderr,
        )


def _arrays(config: dict, data, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs and targets for the images at `index`."""
    size = config["input"]["size"]
    return preprocess(data.images[index], config), mask_targets(data.masks[index], size)


def train_stage(
    model: keras.Model,
    stage_name: str,
    config: dict,
    out: FoldOutputs,
    train_xy: tuple,
    valid_xy: tuple,
) -> StageResult | None:
    """Fit one stage, resuming its checkpoint if a previous run left one; restore the best epoch
    and export `models/<run>-<stage>.keras`. None for a stage of 0 epochs."""
    stage = config[stage_name]
    if stage["epochs"] == 0:
        return None
    resume_path = out.path("models", f"-{stage_name}.resume.npz")
    saved = load_state(resume_path)
    if saved and saved[0]["complete"]:
        restore_variables(resume_path, model.variables, saved[1])
        print(f"{out.run}: {stage_name}: complete in the interrupted run; restored its best epoch")
        return StageResult(_timing(saved[0]), stage_export(model, stage_name, config, out))
    _announce_stage(out, stage_name, stage, saved[0] if saved else None)
    batches = AugmentedBatches(
        *train_xy, stage["batch_size"], config["augmentation"], seed=config["seed"]
    )
    record = saved[0] if saved else {"history": {}, "seconds": 0.0, "next_epoch": 0}
    frozen = min(stage.get("epochs_weights_frozen", 0), stage["epochs"])
    for first, last, trainable in ((0, frozen, False), (frozen, stage["epochs"], True)):
        if record["next_epoch"] < last:
            phase = (max(first, record["next_epoch"]), last, trainable)
            _fit_phase(model, stage_name, config, out, (batches, valid_xy), phase, record, saved)
            saved = None  # restored once, into the first phase that runs
    best = out.path("models", f"-{stage_name}.best.weights.h5")
    model.load_weights(best)
    export = stage_export(model, stage_name, config, out)
    with atomic_path(out.path("models", f"-{stage_name}.keras")) as tmp:
        export.save(tmp)
    save_state(resume_path, model, dict(record, complete=True))
    best.unlink(missing_ok=True)
    figures.plot_history(
        record["history"], f"{out.run} {stage_name}", out.path("figures", f"-{stage_name}.png")
    )
    return StageResult(_timing(record), export)


def stage_export(model: keras.Model, stage_name: str, config: dict, out: FoldOutputs):
    """The probability model a stage exports: its best epoch, or the average of its cosine
    cycles' snapshots (`snapshots.py`) when it ran several."""
    paths = snapshot_paths(_snapshot_path(out, stage_name), config[stage_name])
    return snapshot_ensemble(model, paths) if len(paths) > 1 else with_sigmoid(model)


def _snapshot_path(out: FoldOutputs, stage_name: str):
    return lambda cycle: out.path("models", f"-{stage_name}-snapshot{cycle + 1}.weights.h5")


def _snapshot_callbacks(stage_name: str, stage: dict, out: FoldOutputs, record: dict) -> list:
    """A `SnapshotCheckpoint` for a cosine stage of several cycles; none otherwise."""
    if stage["schedule"] != "cosine" or stage["cycles"] < 2:
        return []
    scores = record["history"].get(MONITOR, [])
    path_of = _snapshot_path(out, stage_name)
    return [SnapshotCheckpoint(path_of, cycle_length(stage), scores, monitor=MONITOR)]


def _announce_stage(out: FoldOutputs, stage_name: str, stage: dict, resumed: dict | None) -> None:
    start = f"; resuming at epoch {resumed['next_epoch'] + 1}" if resumed else ""
    cosine = f" in {stage['cycles']} cosine cycle(s)" if stage["schedule"] == "cosine" else ""
    print(
        f"{out.run}: {stage_name}: {stage['epochs']} epochs of {stage['loss']} "
        f"with {stage['optimizer']} lr {stage['learning_rate']}{cosine}{start}"
    )


def _timing(record: dict) -> dict:
    return {"seconds": record["seconds"], "epochs": len(record["history"].get("loss", []))}


def _fit_phase(model, stage_name, config, out, data, phase, record, saved) -> None:
    """Fit epochs [first, last) with the encoder frozen or not, checkpointing every epoch.

    `saved` (a resume checkpoint) restores the weights, the RNGs and, within the same phase,
    the optimizer and the plateau counters; `record` (history, seconds) grows as epochs end.
    """
    (first, last, trainable), stage, (batches, valid_xy) = phase, config[stage_name], data
    set_encoder_trainable(model, trainable)
    compile_stage(model, stage)
    resume_path = out.path("models", f"-{stage_name}.resume.npz")
    restore = dict(saved[0]) if saved else None
    if saved:
        same_phase = saved[0].get("trainable") == trainable
        restore_training(resume_path, model, saved, same_phase)
        restore["callbacks"] = restore["callbacks"] if same_phase else {}
    record["trainable"] = trainable
    scores = record["history"].get(MONITOR)
    callbacks = stage_callbacks(
        stage,
        out.path("models", f"-{stage_name}.best.weights.h5"),
        out.path("figures", f"-{stage_name}-log.csv"),
        out.path("tb_logs", f"-{stage_name}") if tensorboard_available() else None,
        [MlflowMetrics(stage_name), *_snapshot_callbacks(stage_name, stage, out, record)],
        best_so_far=max(scores) if scores else None,
        append_log=bool(record["history"]),
    )
    resume = ResumeCheckpoint(resume_path, record, batches, callbacks, restore)
    guard = StopOnNonFinite(resume)
    model.fit(
        batches,
        validation_data=valid_xy,
        epochs=last,
        initial_epoch=first,
        shuffle=False,  # the batches shuffle themselves, reproducibly; Keras would use `random`
        callbacks=[*callbacks, guard, resume],
        validation_batch_size=config["predict"]["batch_size"],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if guard.bad_epoch is not None:
        raise UserError(
            f"{out.run}: {stage_name}: the training loss became {guard.bad_loss} in epoch "
            f"{guard.bad_epoch}; stopped. The last good epoch's checkpoint is kept "
            f"({resume_path.name}): lower {stage_name}.learning_rate and rerun with --restart"
        )


def evaluate(prob_model: keras.Model, config: dict, out: FoldOutputs, data, valid_idx) -> dict:
    """Score the fold's validation set with TTA; choose the threshold; save figures, predictions."""
    started = time.perf_counter()
    probs = predict_probs(prob_model, data.images[valid_idx], config)
    seconds = time.perf_counter() - started
    truth = data.masks[valid_idx]
    lo, hi, n = config["predict"]["thresholds"]
    threshold, best, scores = threshold_search(truth, probs, np.linspace(lo, hi, n))
    figures.plot_threshold(
        np.linspace(lo, hi, n), scores, threshold, out.run, out.path("figures", "-threshold.png")
    )
    figures.plot_predictions(
        data.images[valid_idx], truth, probs, threshold, out.path("figures", "-validation.png")
    )
    save_predictions(
        out.path("predictions", "-valid.npz"),
        data.ids[valid_idx],
        probs,
        prediction_meta(config, out.run, "valid", threshold),
    )
    metrics = {
        "validation_score": float(best),
        "validation_score_at_0.5": competition_score(truth, probs > 0.5),
        "empty_baseline_score": competition_score(truth, np.zeros_like(truth)),
        "threshold": float(threshold),
        "validation_images": int(len(valid_idx)),
        "validation_predict_images_per_second": len(valid_idx) / seconds,
    }
    print(
        f"{out.run}: validation score {best:.4f} at threshold {threshold:.3f} "
        f"({metrics['validation_score_at_0.5']:.4f} at 0.5; all-empty baseline "
        f"{metrics['empty_baseline_score']:.4f})"
    )
    return metrics


def predict_test(
    prob_model: keras.Model,
    config: dict,
    out: FoldOutputs,
    data_folder: Path,
    ids: np.ndarray,
    threshold: float,
) -> dict:
    """Predict the test set in chunks; save its probabilities and the fold's submission."""
    from .competition import IMAGE_SIZE

    probs = np.empty((len(ids), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float16)
    started, done = time.perf_counter(), 0
    for chunk_ids, chunk_probs in predict_folder(
        prob_model, data_folder / "test" / "images", ids, config
    ):
        probs[done : done + len(chunk_ids)] = chunk_probs
        done += len(chunk_ids)
    seconds = time.perf_counter() - started
    save_predictions(
        out.path("predictions", "-test.npz"),
        ids,
        probs,
        prediction_meta(config, out.run, "test", threshold),
    )
    submission = out.path("submissions", "-submission.csv")
    write_submission(submission, ids, probs > threshold)
    print(
        f"{out.run}: wrote {submission} ({len(ids)} test images, {len(ids) / seconds:.0f} img/s "
        "with TTA, reading included)"
    )
    return {"test_images": int(len(ids)), "test_predict_images_per_second": len(ids) / seconds}


def _throughput(results: dict, n_train: int) -> dict:
    """Training seconds and images per second (validation passes included) per stage."""
    metrics = {}
    for stage, result in results.items():
        if result:
            timing = result.timing
            metrics[f"{stage}_seconds"] = timing["seconds"]
            metrics[f"{stage}_epochs"] = timing["epochs"]
            metrics[f"{stage}_train_images_per_second"] = (
                n_train * timing["epochs"] / timing["seconds"]
            )
    return metrics
