"""Average the cross-validation folds into one submission, tuning its post-processing out of fold.

Each fold `<base>-cvfold<k>` saved its validation probabilities (images it did not train on) and
its test probabilities (`predictions/<run>-valid.npz`, `-test.npz`). Each fold's validation ids
must be that fold's in the run's split file (`folds/<base>.csv`, `splits.py`), so together the
validation files cover each labelled image once: the out-of-fold (OOF) set. On it one joint grid
search picks the probability threshold and the minimum salt area (`metrics.binarize`: a mask with
fewer salt pixels becomes empty), and hysteresis's peak threshold when that beats one threshold
on held-out halves (`postprocess.tune_rule`). The test probabilities are averaged over the folds
and binarised with the chosen rule. The OOF score measures the single fold models with that
post-processing; the averaged test predictions have no labels, and are expected to do at least
as well.

Writes `submissions/<base>-ensemble-submission.csv`, `models/<base>-ensemble.json` (the
threshold, peak_threshold, min_area, scores and folds, read by `predict.py`) and
`figures/<base>-ensemble-threshold.png`, and logs them to MLflow as run `<base>-ensemble`.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures
from .competition import DEFAULT_THRESHOLD
from .data import read_ids, resolve_data_folder, truth_masks
from .errors import UserError
from .layout import Outputs, any_fold_run, ensemble_run, fold_subset
from .metrics import (
    DEFAULT_SEARCH_THRESHOLDS,
    MIN_AREAS,
    binarize,
    competition_score,
    coverage_report,
    threshold_search,
)
from .postprocess import HALVES_SPLITS, apply_rule, tune_rule
from .predictions import load_header, load_predictions
from .splits import validation_ids
from .submission import validate_submission, write_submission

# Metadata every fold must share with the others to be ensembled.
SHARED_META = ("name", "version", "input_size", "folds")


@dataclass
class FoldFiles:
    """One fold's prediction files."""

    fold: int
    run: str
    valid: Path
    test: Path


def find_folds(outputs_folder: Path, base: str, only: list[int] | None = None) -> list[FoldFiles]:
    """Every fold of `base` with test predictions (or those in `only`), by fold number."""
    outputs = Outputs(Path(outputs_folder))
    folds = []
    for fold, run in outputs.fold_runs(base).items():
        valid, test = run.predictions("valid"), run.predictions("test")
        if not valid.is_file():
            raise UserError(f"{valid}: missing, though {test.name} exists (re-train fold {fold})")
        folds.append(FoldFiles(fold, run.run, valid, test))
    example = outputs.run(any_fold_run(base)).predictions("test")
    if not folds:
        raise UserError(
            f"{example.parent}: no fold predictions {example.name}; train the folds first "
            "(code/run_folds.py or code/train_fold.py)"
        )
    return _select(folds, only, example.parent / any_fold_run(base))


def _select(folds: list[FoldFiles], only: list[int] | None, where: Path) -> list[FoldFiles]:
    """The folds asked for with --folds; each must have been found."""
    if only is None:
        return folds
    found = {f.fold for f in folds}
    absent = sorted(set(only) - found)
    if absent:
        raise UserError(
            f"{where}: --folds asks for fold(s) {absent} with no predictions "
            f"(found {sorted(found)})"
        )
    return [f for f in folds if f.fold in set(only)]


def _check_meta(meta: dict, files: FoldFiles, split: str, reference: dict) -> None:
    """A fold file's metadata must name its run and split and match the first fold's run."""
    path = files.valid if split == "valid" else files.test
    if meta.get("run") != files.run or meta.get("split") != split:
        raise UserError(
            f"{path}: metadata says run {meta.get('run')!r}, split {meta.get('split')!r}; "
            f"expected {files.run!r}, {split!r}"
        )
    for key in SHARED_META:
        if meta.get(key) != reference.get(key):
            raise UserError(
                f"{path}: {key} is {meta.get(key)!r} but {reference['run']} has "
                f"{reference.get(key)!r}; folds of different runs cannot be ensembled"
            )
    if not isinstance(meta["folds"], int) or not 0 <= files.fold < meta["folds"]:
        raise UserError(f"{path}: fold {files.fold} is not one of the run's {meta['folds']} folds")


def align_ids(ids: np.ndarray, reference: np.ndarray, where: Path) -> np.ndarray | slice:
    """An index putting `ids` in `reference`'s order; a UserError unless both hold the same ids."""
    if np.array_equal(ids, reference):
        return slice(None)
    if len(ids) != len(reference) or set(ids) != set(reference):
        differ = len(set(ids) ^ set(reference))
        raise UserError(
            f"{where}: its {len(ids)} test ids differ from the first fold's {len(reference)} "
            f"({differ} id(s) in only one); were the folds predicted on different test sets?"
        )
    position = {image_id: k for k, image_id in enumerate(ids)}
    return np.array([position[image_id] for image_id in reference])


def check_folds(folds: list[FoldFiles], split_file: Path) -> tuple[dict, np.ndarray, list]:
    """Check every fold's metadata and ids before reading probabilities.

    Returns the first fold's test metadata, its test ids, and per fold the index aligning its
    test ids to those.
    """
    test_ids, reference = load_header(folds[0].test)
    alignments = []
    for files in folds:
        ids, meta = load_header(files.valid)
        _check_meta(meta, files, "valid", reference)
        _check_split(ids, files, split_file)
        ids, meta = load_header(files.test)
        _check_meta(meta, files, "test", reference)
        alignments.append(align_ids(ids, test_ids, files.test))
    return reference, test_ids, alignments


def _check_split(ids: np.ndarray, files: FoldFiles, split_file: Path) -> None:
    """A fold's validation ids must be its fold's in the split file: otherwise it was trained on
    another split (other data, or a split file deleted since), and the out-of-fold search would
    score images some fold trained on."""
    if not split_file.is_file():
        raise UserError(
            f"{split_file}: missing: the folds' split, written by the first fold trained "
            "(copy it with the folds' outputs, or retrain them)"
        )
    expected = validation_ids(split_file, files.fold)
    if set(ids) != expected:
        raise UserError(
            f"{files.valid}: its {len(ids)} validation ids are not fold {files.fold}'s "
            f"{len(expected)} in {split_file}; the folds were split differently "
            "(another crossvalidation.split_seed or data set?)"
        )


def load_oof(folds: list[FoldFiles]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
    """The folds' validation ids and float16 probabilities, concatenated, and per fold its image
    count and own threshold (to score each fold as it was)."""
    ids, probs, per_fold = [], [], []
    for files in folds:
        fold_ids, fold_probs, meta = load_predictions(files.valid)
        ids.append(fold_ids)
        probs.append(fold_probs)
        per_fold.append((len(fold_ids), float(meta["threshold"])))
    return np.concatenate(ids), np.concatenate(probs), per_fold


def mean_test_probs(folds: list[FoldFiles], alignments: list, n_images: int) -> np.ndarray:
    """The mean over folds of the test probabilities (N, 101, 101) float32, one fold in memory."""
    total = None
    for files, index in zip(folds, alignments, strict=True):
        _, probs, _ = load_predictions(files.test)
        if len(probs) != n_images:
            raise UserError(f"{files.test}: {len(probs)} probability maps for {n_images} ids")
        if total is None:
            total = np.zeros(probs.shape, dtype=np.float32)
        total += probs[index]
    return total / len(folds)


def oof_scores(
    truth: np.ndarray, probs: np.ndarray, per_fold: list, thresholds, min_areas
) -> tuple[dict, np.ndarray]:
    """Tune the rule on the OOF set (`postprocess.tune_rule`); score the alternatives it is
    compared with."""
    summary, grid = tune_rule(truth, probs, thresholds, min_areas)
    fold_scores, start = [], 0
    for count, fold_threshold in per_fold:
        part = slice(start, start + count)
        fold_scores.append(competition_score(truth[part], binarize(probs[part], fold_threshold)))
        start += count
    masks = apply_rule(probs, summary)
    summary.update(
        {
            "oof_score_threshold_only": threshold_search(truth, probs, thresholds)[1],
            "oof_score_at_0.5": competition_score(truth, binarize(probs, DEFAULT_THRESHOLD)),
            "mean_fold_validation_score": float(np.mean(fold_scores)),
            "fold_validation_scores": fold_scores,
            "empty_baseline_score": competition_score(truth, np.zeros_like(truth)),
            "oof_images": int(len(truth)),
            "oof_by_coverage_class": coverage_report(truth, masks),
        }
    )
    return summary, grid


def run_ensemble(
    outputs_folder: Path,
    base: str,
    data_folder: Path,
    thresholds: np.ndarray = DEFAULT_SEARCH_THRESHOLDS,
    min_areas: np.ndarray = MIN_AREAS,
    only: list[int] | None = None,
) -> dict:
    """Ensemble the folds of run `base` found in `outputs_folder` (or the folds in `only`);
    return the summary it writes.

    Every check (fold metadata, ids, truth masks, the sample submission's ids) runs before any
    output is written.
    """
    data_folder = resolve_data_folder(data_folder)
    thresholds, min_areas = search_grid(thresholds, min_areas)
    folds = find_folds(outputs_folder, base, only)
    split_file = Outputs(Path(outputs_folder)).split_file(base)
    reference, test_ids, alignments = check_folds(folds, split_file)
    expected_ids = read_ids(data_folder / "sample_submission.csv")
    validate_submission(blank_submission(test_ids), expected_ids, name=str(folds[0].test))
    _announce(base, folds, reference["folds"])
    valid_ids, valid_probs, per_fold = load_oof(folds)
    truth = truth_masks(data_folder, valid_ids)
    summary, grid = oof_scores(truth, valid_probs, per_fold, thresholds, min_areas)
    test_probs = mean_test_probs(folds, alignments, len(test_ids))
    masks = apply_rule(test_probs, summary)
    subset = fold_subset([f.fold for f in folds], reference["folds"])
    summary.update(_description(base, folds, reference, thresholds, min_areas, masks, subset))
    _write_outputs(Path(outputs_folder), base, test_ids, masks, summary, grid, subset)
    return summary


def search_grid(thresholds, min_areas) -> tuple[np.ndarray, np.ndarray]:
    """The search grids, sorted, checked to hold thresholds in (0, 1) and areas >= 0."""
    thresholds = np.unique(np.asarray(thresholds, dtype=np.float64))
    min_areas = np.unique(np.asarray(min_areas, dtype=np.int64))
    if thresholds.size == 0 or thresholds.min() <= 0 or thresholds.max() >= 1:
        raise UserError("ensemble thresholds must be a non-empty grid within (0, 1)")
    if min_areas.size == 0 or min_areas.min() < 0:
        raise UserError("ensemble min_areas must be a non-empty grid of pixel counts >= 0")
    return thresholds, min_areas


def blank_submission(ids: np.ndarray) -> pd.DataFrame:
    """A submission frame of `ids` with empty masks, to check the ids before any work."""
    return pd.DataFrame({"id": [str(i) for i in ids], "rle_mask": ""})


def _announce(base: str, folds: list[FoldFiles], n_folds: int) -> None:
    """Say which folds are ensembled; warn when some of the run's folds are missing."""
    found = [f.fold for f in folds]
    print(f"{base}: ensembling fold(s) {', '.join(map(str, found))} of {n_folds}")
    missing = sorted(set(range(n_folds)) - set(found))
    if missing:
        print(
            f"warning: fold(s) {', '.join(map(str, missing))} missing: the search covers only "
            "the present folds' validation images (code/run_folds.py trains the rest)",
            file=sys.stderr,
        )


def _description(base, folds, reference, thresholds, min_areas, masks, subset) -> dict:
    """What the ensemble was made of, for its summary JSON."""
    return {
        "run": ensemble_run(base, subset),
        "name": reference["name"],
        "version": reference["version"],
        "input_size": reference["input_size"],
        "folds": reference["folds"],
        "folds_used": [f.fold for f in folds],
        "runs": [f.run for f in folds],
        "complete": len(folds) == reference["folds"],
        "thresholds": [float(t) for t in thresholds],
        "min_areas": [int(a) for a in min_areas],
        "test_images": int(len(masks)),
        "test_empty_fraction": float((masks.reshape(len(masks), -1).max(axis=1) == 0).mean()),
    }


def _write_outputs(out: Path, base: str, test_ids, masks, summary: dict, grid, subset) -> None:
    """Write the submission, figure and summary JSON, and log them to MLflow."""
    paths = Outputs(out).ensemble(base, subset)
    write_submission(paths.submission, test_ids, masks)
    summary["submission"] = str(paths.submission)
    figures.plot_threshold_area(
        np.asarray(summary["thresholds"]),
        np.asarray(summary["min_areas"]),
        grid,
        (summary["threshold_one_threshold"], summary["min_area_one_threshold"]),
        f"{base} ensemble of {len(summary['folds_used'])} fold(s)",
        paths.figure,
    )
    from .tracking import log_fold_metrics, mlflow_run  # imports keras: only when needed

    params = {k: summary[k] for k in ("folds_used", "thresholds", "min_areas", "runs")}
    with mlflow_run(out, base, summary["run"], params) as mlflow:
        log_fold_metrics(summary, paths.summary)
        mlflow.log_artifact(str(paths.figure))
    print("fold  validation score")
    for fold, score in zip(summary["folds_used"], summary["fold_validation_scores"], strict=True):
        print(f"{fold:>4}  {score:.4f}")
    print_coverage_report(summary["oof_by_coverage_class"])
    print_hysteresis(summary)
    print(
        f"{base}: out-of-fold score {summary['oof_score']:.4f} at {describe_rule(summary)} "
        f"(threshold alone {summary['oof_score_threshold_only']:.4f}; mean fold score "
        f"{summary['mean_fold_validation_score']:.4f}); wrote {paths.submission}"
    )


def describe_rule(summary: dict) -> str:
    """The chosen rule in words: threshold, hysteresis's peak if kept, min_area."""
    peak = summary["peak_threshold"]
    hysteresis = "" if peak is None else f", peak {peak:.3f}"
    return f"threshold {summary['threshold']:.3f}{hysteresis}, min_area {summary['min_area']}"


def print_hysteresis(summary: dict) -> None:
    """Print whether hysteresis beat the one threshold on held-out halves, and so is kept."""
    gain, spread = summary["held_out_gain_hysteresis"], summary["held_out_gain_std_hysteresis"]
    kept = "kept" if summary["hysteresis_kept"] else "not kept"
    print(
        f"hysteresis (peak {summary['peak_threshold_hysteresis']:.3f}): out-of-fold "
        f"{summary['oof_score_hysteresis']:.4f} against one threshold's "
        f"{summary['oof_score_one_threshold']:.4f}; held-out gain {gain:+.4f} +- {spread:.4f} "
        f"over {HALVES_SPLITS} random halves: {kept}"
    )


def print_coverage_report(rows: list[dict]) -> None:
    """Print `metrics.coverage_report`'s rows: the out-of-fold score lost per coverage class."""
    print("salt coverage  images  predicted empty  score  score lost")
    for row in rows:
        c = row["coverage_class"]
        label = "empty" if c == 0 else f"{10 * (c - 1)}-{10 * c}%"
        print(
            f"{label:>13}  {row['images']:>6}  {row['predicted_empty']:>15}  "
            f"{row['score']:.3f}  {row['loss']:.4f}"
        )
