"""Train, evaluate and predict one cross-validation fold: what `train_fold.py` runs.

Its outputs (one `.keras` per stage, the resolved config, the metrics JSON, figures, TensorBoard
logs, validation and test probabilities, a submission) are named by `layout.RunOutputs`; its
train/validation split is the config's split file (`splits.py`).
"""

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from . import figures, pseudo_labels
from .allocator import RestoreMallocThresholds
from .atomic import atomic_path
from .averaging import SwaAverage, recompute_batch_norm
from .competition import DEFAULT_THRESHOLD
from .config import Config, StageConfig, save_config
from .data import TEST_IMAGES, load_train, resolve_data_folder, test_ids
from .device import describe_device, tensorboard_available
from .errors import UserError
from .inference import compile_for_prediction, predict_folder, predict_probs
from .init_from import check_init, start_from_init
from .layout import STAGE_NAMES, Outputs, RunOutputs, base_run, fold_run
from .lock import fold_lock
from .metrics import competition_score, coverage_class, threshold_grid, threshold_search
from .models import build_model, with_sigmoid
from .pipeline import AugmentedBatches, mask_targets, preprocess
from .predictions import prediction_meta, save_predictions
from .pseudo_labels import PseudoImages
from .resume import (
    Checkpoint,
    ResumeCheckpoint,
    StageRecord,
    load_state,
    restore_training,
    restore_variables,
    save_state,
)
from .snapshots import SnapshotCheckpoint, cycle_length, snapshot_ensemble, snapshot_paths
from .splits import fold_assignment, is_holdout, save_split, split_indices
from .submission import write_submission
from .tracking import MlflowMetrics, log_fold_metrics, mlflow_run
from .training import (
    MONITOR,
    StopOnNonFinite,
    compile_stage,
    set_encoder_trainable,
    stage_callbacks,
)


class StageResult(NamedTuple):
    """What a trained stage hands on: its record (seconds, epochs), and the probability model it
    exported (built once: a snapshot average is not cheap to assemble twice)."""

    record: StageRecord
    export: keras.Model


class Phase(NamedTuple):
    """Epochs [first, last) of a stage, with the pretrained encoder frozen or trainable."""

    first: int
    last: int
    trainable: bool


@dataclasses.dataclass
class StageFit:
    """Everything the epochs of one stage share: the model, the stage's name and config, where
    its files go, its data, its running record (history, seconds), which grows as epochs
    end, and its SWA average, if it has one."""

    model: keras.Model
    name: str
    config: Config
    out: RunOutputs
    batches: AugmentedBatches
    valid_xy: tuple
    record: StageRecord
    swa: SwaAverage | None = None

    @property
    def stage(self) -> StageConfig:
        return self.config.stage(self.name)


def train_fold(
    config: Config, fold: int | None, data_folder: Path, outputs_folder: Path, restart: bool = False
) -> dict:
    """Train both stages on one fold, pick the validation threshold, predict the test set.

    Every input is checked before anything is written. A fold that is already complete is not
    trained again; an interrupted one resumes from its last complete epoch (`restart` discards
    both). Returns the fold's metrics, also written to `models/<run>-metrics.json` and MLflow.
    """
    data_folder, outputs = resolve_data_folder(data_folder), Outputs(Path(outputs_folder))
    out = outputs.run(fold_run(base_run(config), fold))
    if out.complete() and not restart:
        print(f"{out.run}: already complete ({out.metrics}); nothing to do (--restart retrains)")
        return json.loads(out.metrics.read_text())
    ids_test = test_ids(data_folder)
    data = load_train(data_folder, config.input.channels)
    holdout = is_holdout(fold, config)
    split_file = outputs.split_file(out.base, holdout)
    assignment = fold_assignment(split_file, data.ids, data.masks, config, fold)
    train_idx, valid_idx = split_indices(assignment, fold)
    pseudo_labels.check_for_training(config, outputs, fold, holdout, data.ids[valid_idx])
    check_init(config, outputs, fold)
    out.prepare()
    save_split(split_file, data.ids, data.masks, assignment)
    with fold_lock(out.lock, out.run):
        if restart:
            out.start_over()
        elif out.check_resumable(config):
            print(f"{out.run}: resuming the interrupted run (--restart starts over)")
        save_config(config, out.config)
        _announce(out, len(train_idx), len(valid_idx), len(ids_test))
        split = (train_idx, valid_idx)
        metrics = _train_and_predict(config, out, data, split, data_folder, ids_test)
        out.clear_resume()
    return metrics


def _train_and_predict(config, out, data, split, data_folder, ids_test) -> dict:
    """Both stages, validation scoring and test prediction, inside one MLflow run."""
    valid_idx = split[1]
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    start_from_init(model, config, out)
    pseudo = pseudo_labels.training_images(
        config, Outputs(out.root), out.fold, data_folder, out.run
    )
    train_xy, valid_xy = fold_arrays(config, data, split, pseudo)
    with mlflow_run(out.root, out.base, out.run, config.to_dict()):
        results = {s: train_stage(model, s, config, out, train_xy, valid_xy) for s in STAGE_NAMES}
        trained = [result for result in results.values() if result]
        final = trained[-1].export if trained else with_sigmoid(model)
        prob_model = compile_for_prediction(final)
        metrics = evaluate(prob_model, config, out, data, valid_idx)
        metrics.update(
            predict_test(prob_model, config, out, data_folder, ids_test, metrics["threshold"])
        )
        metrics.update(_throughput(results, len(train_xy[0])))
        metrics["pseudo_label_images"] = 0 if pseudo is None else len(pseudo.ids)
        log_fold_metrics(metrics, out.metrics)
    return metrics


def _announce(out: RunOutputs, n_train: int, n_valid: int, n_test: int) -> None:
    """Say what runs where, once, and warn when TensorBoard logs cannot be written."""
    print(f"{out.run}: {describe_device()}; {n_train} train / {n_valid} validation / {n_test} test")
    if not tensorboard_available():
        print(
            "warning: TensorBoard logs are skipped: Keras writes them through TensorFlow; "
            "install tensorflow-cpu and tensorboard to get them",
            file=sys.stderr,
        )


def fold_arrays(config: Config, data, split: tuple, pseudo: PseudoImages | None) -> tuple:
    """(train, validation) model inputs and targets of a fold: the labelled images at the split's
    indices, plus the fold's pseudo-labelled test images (if any) in the training part only, so
    the validation score stays a score against true labels; small-salt images repeated as
    `data.small_salt_repeats` says, in the training part only."""
    train_idx, valid_idx = split
    images, masks = data.images[train_idx], data.masks[train_idx]
    if pseudo is not None and len(pseudo.ids):
        images = np.concatenate([images, pseudo.images])
        masks = np.concatenate([masks, pseudo.masks])
    images, masks = repeat_small_salt(images, masks, config.data.small_salt_repeats)
    valid = data.images[valid_idx], data.masks[valid_idx]
    return _model_arrays(config, images, masks), _model_arrays(config, *valid)


def repeat_small_salt(images: np.ndarray, masks: np.ndarray, repeats: int) -> tuple:
    """The images (and masks) with each one of coverage class 1 (salt on more than 0 and at most
    10% of it) `repeats` times: more gradient on the small bodies the models miss most."""
    if repeats == 1:
        return images, masks  # no copy of the training arrays in the usual case
    small = np.flatnonzero(coverage_class(masks) == 1)
    order = np.concatenate([np.arange(len(images)), np.repeat(small, repeats - 1)])
    return images[order], masks[order]


def _model_arrays(config: Config, images: np.ndarray, masks: np.ndarray) -> tuple:
    """Model inputs and targets of uint8 images and masks."""
    return preprocess(images, config), mask_targets(masks, config)


def train_stage(
    model: keras.Model,
    stage_name: str,
    config: Config,
    out: RunOutputs,
    train_xy: tuple,
    valid_xy: tuple,
) -> StageResult | None:
    """Fit one stage, resuming its checkpoint if a previous run left one; restore the best epoch
    and export `models/<run>-<stage>.keras`. None for a stage of 0 epochs."""
    stage = config.stage(stage_name)
    if stage.epochs == 0:
        return None
    saved = load_state(out.resume(stage_name))
    if saved and saved.record.complete:
        restore_variables(out.resume(stage_name), model.variables, saved.model)
        print(f"{out.run}: {stage_name}: complete in the interrupted run; restored its best epoch")
        return StageResult(saved.record, stage_export(model, stage_name, config, out))
    _announce_stage(out, stage_name, stage, saved.record if saved else None)
    batches = AugmentedBatches(*train_xy, stage.batch_size, config.augmentation, seed=config.seed)
    record = saved.record if saved else StageRecord()
    fit = StageFit(model, stage_name, config, out, batches, valid_xy, record, _swa(stage, saved))
    frozen = min(stage.epochs_weights_frozen, stage.epochs)
    for first, last, trainable in ((0, frozen, False), (frozen, stage.epochs, True)):
        if record.next_epoch < last:
            _fit_phase(fit, Phase(max(first, record.next_epoch), last, trainable), saved)
            saved = None  # restored once, into the first phase that runs
    if saved:  # killed after the last epoch: the SWA pass below starts from the same state
        restore_variables(out.resume(stage_name), model.variables, saved.model)
    return _finish_stage(fit)


def _swa(stage: StageConfig, saved: Checkpoint | None) -> SwaAverage | None:
    """The stage's SWA average of its last `swa_epochs` epochs, resumed from `saved`."""
    if not stage.swa_epochs:
        return None
    return SwaAverage.from_arrays(stage.epochs - stage.swa_epochs, saved and saved.callbacks)


def try_swa(fit: StageFit) -> None:
    """Score the SWA average (batch-norm statistics recomputed on the training images) on the
    validation set; keep it as the stage's best weights if it scores at least as well as the
    best epoch. The outcome goes into the stage's record and is printed."""
    swa, model, scores = fit.swa, fit.model, fit.record.history.get(MONITOR, [])
    if swa is None or not swa.count or not scores:
        return
    swa.assign_to(model)
    recompute_batch_norm(model, fit.batches.x, fit.stage.batch_size)
    x, y = fit.valid_xy
    batch = fit.config.predict.batch_size
    score = model.evaluate(x, y, batch_size=batch, verbose=0, return_dict=True)["score"]
    used = score >= max(scores)
    fit.record.swa = {"epochs": swa.count, "score": score, "used": used}
    if used:
        with atomic_path(fit.out.best_weights(fit.name)) as tmp:
            model.save_weights(tmp)
    kept = "kept" if used else "not kept"
    print(
        f"{fit.out.run}: {fit.name}: SWA of the last {swa.count} epochs scores {score:.4f} "
        f"against the best epoch's {max(scores):.4f}: {kept}"
    )


def _finish_stage(fit: StageFit) -> StageResult:
    """Weigh the SWA average against the best epoch, restore the better, export its model,
    mark the stage's checkpoint complete."""
    model, name, out = fit.model, fit.name, fit.out
    try_swa(fit)
    model.load_weights(out.best_weights(name))
    export = stage_export(model, name, fit.config, out)
    with atomic_path(out.model(name)) as tmp:
        export.save(tmp)
    fit.record.complete = True
    save_state(out.resume(name), model, fit.record)
    out.best_weights(name).unlink(missing_ok=True)
    figures.plot_history(fit.record.history, f"{out.run} {name}", out.figure(name))
    return StageResult(fit.record, export)


def stage_export(model: keras.Model, stage_name: str, config: Config, out: RunOutputs):
    """The probability model a stage exports: its best epoch, or the average of its cosine
    cycles' snapshots (`snapshots.py`) when it ran several."""
    paths = snapshot_paths(_snapshot_path(out, stage_name), config.stage(stage_name))
    return snapshot_ensemble(model, paths) if len(paths) > 1 else with_sigmoid(model)


def _snapshot_path(out: RunOutputs, stage_name: str):
    return lambda cycle: out.snapshot(stage_name, cycle)


def _snapshot_callbacks(fit: StageFit) -> list:
    """A `SnapshotCheckpoint` for a cosine stage of several cycles; none otherwise."""
    stage = fit.stage
    if stage.schedule != "cosine" or stage.cycles < 2:
        return []
    scores = fit.record.history.get(MONITOR, [])
    path_of = _snapshot_path(fit.out, fit.name)
    return [SnapshotCheckpoint(path_of, cycle_length(stage), scores, monitor=MONITOR)]


def _announce_stage(
    out: RunOutputs, stage_name: str, stage: StageConfig, resumed: StageRecord | None
) -> None:
    start = f"; resuming at epoch {resumed.next_epoch + 1}" if resumed else ""
    cosine = f" in {stage.cycles} cosine cycle(s)" if stage.schedule == "cosine" else ""
    print(
        f"{out.run}: {stage_name}: {stage.epochs} epochs of {stage.loss} "
        f"with {stage.optimizer} lr {stage.learning_rate}{cosine}{start}"
    )


def _fit_phase(fit: StageFit, phase: Phase, saved: Checkpoint | None) -> None:
    """Fit epochs [first, last) with the encoder frozen or not, checkpointing every epoch.

    `saved` (a resume checkpoint) restores the weights, the RNGs and, within the same phase,
    the optimizer and the plateau counters; `fit.record` (history, seconds) grows as epochs end.
    """
    set_encoder_trainable(fit.model, phase.trainable)
    compile_stage(fit.model, fit.stage)
    restore = _restore(fit, phase, saved)
    fit.record.trainable = phase.trainable
    callbacks = _phase_callbacks(fit)
    resume = ResumeCheckpoint(fit.out.resume(fit.name), fit.record, fit.batches, callbacks, restore)
    guard = StopOnNonFinite(resume)
    fit.model.fit(
        fit.batches,
        validation_data=fit.valid_xy,
        epochs=phase.last,
        initial_epoch=phase.first,
        shuffle=False,  # the batches shuffle themselves, reproducibly; Keras would use `random`
        callbacks=[*callbacks, guard, resume, RestoreMallocThresholds()],
        validation_batch_size=fit.config.predict.batch_size,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if guard.bad_epoch is not None:
        raise UserError(
            f"{fit.out.run}: {fit.name}: the training loss became {guard.bad_loss} in epoch "
            f"{guard.bad_epoch}; stopped. The last good epoch's checkpoint is kept "
            f"({fit.out.resume(fit.name).name}): lower {fit.name}.learning_rate and rerun "
            "with --restart"
        )


def _restore(fit: StageFit, phase: Phase, saved: Checkpoint | None) -> StageRecord | None:
    """Put a resume checkpoint's variables back; return the record whose counters and
    augmentation epoch `ResumeCheckpoint` restores (counters only within the same phase)."""
    if not saved:
        return None
    same_phase = saved.record.trainable == phase.trainable
    restore_training(fit.out.resume(fit.name), fit.model, saved, same_phase)
    callbacks = saved.record.callbacks if same_phase else {}
    return dataclasses.replace(saved.record, callbacks=callbacks)


def _phase_callbacks(fit: StageFit) -> list:
    """The stage's callbacks, carrying its best score and CSV log across phases and resumes."""
    scores = fit.record.history.get(MONITOR)
    out, name = fit.out, fit.name
    return stage_callbacks(
        fit.stage,
        out.best_weights(name),
        out.history_log(name),
        out.tb_logs(name) if tensorboard_available() else None,
        [MlflowMetrics(name), *_snapshot_callbacks(fit), *([fit.swa] if fit.swa else [])],
        best_so_far=max(scores) if scores else None,
        logged_epochs=fit.record.next_epoch,
    )


def evaluate(prob_model: keras.Model, config: Config, out: RunOutputs, data, valid_idx) -> dict:
    """Score the fold's validation set with TTA; choose the threshold; save figures, predictions."""
    started = time.perf_counter()
    probs = predict_probs(prob_model, data.images[valid_idx], config)
    seconds = time.perf_counter() - started
    truth = data.masks[valid_idx]
    grid = threshold_grid(*config.predict.thresholds)
    threshold, best, scores = threshold_search(truth, probs, grid)
    figures.plot_threshold(grid, scores, threshold, out.run, out.figure("threshold"))
    figures.plot_predictions(
        data.images[valid_idx], truth, probs, threshold, out.figure("validation")
    )
    save_predictions(
        out.predictions("valid"),
        data.ids[valid_idx],
        probs,
        prediction_meta(config, out.run, "valid", threshold),
    )
    metrics = {
        "validation_score": float(best),
        "validation_score_at_0.5": competition_score(truth, probs > DEFAULT_THRESHOLD),
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
    config: Config,
    out: RunOutputs,
    data_folder: Path,
    ids: np.ndarray,
    threshold: float,
) -> dict:
    """Predict the test set in chunks; save its probabilities and the fold's submission."""
    from .competition import IMAGE_SIZE

    probs = np.empty((len(ids), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float16)
    started, done = time.perf_counter(), 0
    for chunk_ids, chunk_probs in predict_folder(
        prob_model, data_folder / TEST_IMAGES, ids, config
    ):
        probs[done : done + len(chunk_ids)] = chunk_probs
        done += len(chunk_ids)
    seconds = time.perf_counter() - started
    save_predictions(
        out.predictions("test"),
        ids,
        probs,
        prediction_meta(config, out.run, "test", threshold),
    )
    submission = out.submission
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
            record = result.record
            metrics[f"{stage}_seconds"] = record.seconds
            metrics[f"{stage}_epochs"] = record.epochs
            metrics[f"{stage}_train_images_per_second"] = n_train * record.epochs / record.seconds
    return metrics
