"""Pseudo-labels: a finished cross-validation run's confident test predictions, as training masks
for the next round (the 2018 winners called pseudo-labelling a major factor).

Selection (`CRITERIA`). A kept image's mask is its probabilities binarised with the run's ensemble
threshold and minimum salt area (`models/<base>-ensemble.json`), or without that file with
threshold 0.5 and no minimum area. Which images are kept:
- `share` (1st place's): the share of its pixels with a probability below `low` or above `high`
  (0.2 and 0.8 by default) is at least `min_share` (0.95): the model is sure of nearly every
  pixel, salt or not.
- `salt_iou`: its mask holds salt, and its masks at `low` and at `high` overlap with an IoU of
  at least `min_share`: the salt's outline barely moves across the band. Empty masks are never
  kept: a model that misses small salt bodies is confidently wrong about them.

Honest out of fold. In K-fold cross-validation every fold model j != k trained on fold k's
validation images. Pseudo-labels averaged over the folds would carry those images' labels into
fold k's next round, whose validation score (and the out-of-fold threshold search built on it)
would then be optimistic. So a set is made per fold: fold k's pseudo-labels come only from fold
k's own model's test predictions (`predictions/<run>-cvfold<k>-test.npz`), the one model that
never saw fold k's validation images. Each fold's file records those images' ids, and a fold
that trains with the set checks that its own validation images are among them (the same split:
same split seed, fold count and data). By induction every round stays honest. The threshold and
minimum area are two numbers tuned on all folds' validation images: a negligible exception,
avoidable with `--threshold`.

A set `<root>-pseudo<r>` is for round r, made from round r-1 of `<root>` (`layout.py`). It is
written fold file by fold file, then its CSV summary, then its JSON manifest: a set exists when
its manifest does.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path, write_text
from .competition import DEFAULT_THRESHOLD
from .config import Config
from .data import TEST_IMAGES, resolve_data_folder, truth_masks
from .errors import UserError
from .layout import Outputs, cv_run, parse_round_run, round_run
from .metrics import image_scores
from .postprocess import apply_rule
from .predictions import load_predictions
from .splits import validation_ids

KEY = "data.pseudo_labels"
CHUNK = 512  # images per step of the confidence count: bounds the temporary boolean arrays


@dataclass(frozen=True)
class Selection:
    """Which test images become pseudo-labels: those `criterion` keeps (a name in `CRITERIA`)
    with the band (`low`, `high`) and the minimum `min_share` (a share of pixels or an IoU)."""

    low: float = 0.2
    high: float = 0.8
    min_share: float = 0.95
    criterion: str = "share"

    def check(self) -> None:
        if not 0 < self.low <= self.high < 1:
            raise UserError(f"--confidence {self.low} {self.high}: need 0 < LOW <= HIGH < 1")
        if not 0 < self.min_share <= 1:
            raise UserError(f"--min-share {self.min_share}: need a share in (0, 1]")
        if self.criterion not in CRITERIA:
            raise UserError(f"--criterion {self.criterion!r}: known are {', '.join(CRITERIA)}")


@dataclass(frozen=True)
class PseudoImages:
    """One fold's pseudo-labelled test images, ready to join its training part."""

    ids: np.ndarray
    images: np.ndarray  # (N, 101, 101, C) uint8, as `data.read_images` reads
    masks: np.ndarray  # (N, 101, 101) 0/1 uint8


def _per_image(probs: np.ndarray, statistic) -> np.ndarray:
    """`statistic` of each image's flattened pixels (a 2-D array in, one value per row out),
    CHUNK images at a time to bound the temporary arrays."""
    values = np.empty(len(probs), dtype=np.float64)
    for start in range(0, len(probs), CHUNK):
        part = probs[start : start + CHUNK]
        values[start : start + CHUNK] = statistic(part.reshape(len(part), -1))
    return values


def _band(probs: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """The band's edges in the probabilities' dtype (as `metrics.binarize` compares)."""
    return np.asarray(low, probs.dtype), np.asarray(high, probs.dtype)


def confident_share(probs: np.ndarray, low: float, high: float) -> np.ndarray:
    """Per image, the share of pixels with probability < `low` or > `high`."""
    lo, hi = _band(probs, low, high)
    return _per_image(probs, lambda pixels: ((pixels < lo) | (pixels > hi)).mean(axis=1))


def band_mask_iou(probs: np.ndarray, low: float, high: float) -> np.ndarray:
    """Per image, the IoU of its masks `probs > low` and `probs > high` (1 when both are empty):
    how far the mask's outline moves across the band."""
    lo, hi = _band(probs, low, high)

    def iou(pixels: np.ndarray) -> np.ndarray:
        inner, outer = (pixels > hi).sum(axis=1), (pixels > lo).sum(axis=1)  # inner in outer
        return np.where(outer == 0, 1.0, inner / np.maximum(outer, 1))

    return _per_image(probs, iou)


def _share_keeps(probs: np.ndarray, masks: np.ndarray, selection: "Selection") -> np.ndarray:
    return confident_share(probs, selection.low, selection.high) >= selection.min_share


def _salt_iou_keeps(probs: np.ndarray, masks: np.ndarray, selection: "Selection") -> np.ndarray:
    salt = masks.reshape(len(masks), -1).any(axis=1)
    return salt & (band_mask_iou(probs, selection.low, selection.high) >= selection.min_share)


# name -> keep(probs, masks, selection): a boolean per image; `masks` are the binarised labels
CRITERIA = {"share": _share_keeps, "salt_iou": _salt_iou_keeps}


def select_confident(probs: np.ndarray, selection: Selection, masks: np.ndarray) -> np.ndarray:
    """A boolean per image: is it confident enough to be a pseudo-label with mask `masks`?"""
    return CRITERIA[selection.criterion](probs, masks, selection)


def set_name(source: str, round_: int | None) -> tuple[str, str, int]:
    """(source base run, set name, round) for pseudo-labels from run `source` (a base run or
    its ensemble); the round is the source's round + 1 unless given, and must be later."""
    base = cv_run(source)
    root, source_round = parse_round_run(base)
    round_ = source_round + 1 if round_ is None else round_
    if round_ <= source_round:
        raise UserError(
            f"--round {round_}: {base} is round {source_round}; its pseudo-labels train a later "
            f"round (default {source_round + 1})"
        )
    return base, round_run(root, round_), round_


def post_processing(outputs: Outputs, base: str, threshold: float | None) -> dict:
    """The threshold, hysteresis peak (None: one threshold) and minimum area that binarise the
    masks, and where they came from."""
    summary = outputs.ensemble(base).summary
    one = {"peak_threshold": None, "min_area": 0}
    if threshold is not None:
        return {"threshold": threshold, **one, "threshold_from": "--threshold"}
    if not summary.is_file():
        return {"threshold": DEFAULT_THRESHOLD, **one, "threshold_from": "default"}
    try:
        found = json.loads(summary.read_text())
        return {
            "threshold": float(found["threshold"]),
            "peak_threshold": found.get("peak_threshold"),
            "min_area": int(found["min_area"]),
            "threshold_from": summary.name,
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{summary}: not an ensemble summary ({exc!r})") from None


def make_pseudo_labels(
    outputs_folder: Path,
    data_folder: Path,
    source: str,
    round_: int | None = None,
    selection: Selection | None = None,
    threshold: float | None = None,
) -> dict:
    """Make (or find, when made already with the same settings) the pseudo-label set of run
    `source`'s folds; return its manifest. `data_folder` holds the labelled masks that score the
    selection out of fold (`selection_check`)."""
    selection = selection or Selection()
    selection.check()
    outputs = Outputs(Path(outputs_folder))
    base, name, round_ = set_name(source, round_)
    folds = outputs.fold_runs(base)
    if not folds:
        where = outputs.run(base).predictions("test").parent
        raise UserError(f"{where}: no fold test predictions of {base}; train its folds first")
    settings = {"set": name, "round": round_, "source": base, **asdict(selection)}
    settings.update(post_processing(outputs, base, threshold))
    existing = _existing(outputs, settings)
    made = [] if existing is None else existing["folds"]
    if existing is not None and set(folds) <= set(made):
        print(f"{name}: made already ({outputs.pseudo_set(name).manifest}); nothing to do")
        return existing
    split_file = _split_file(outputs, base)
    rows = _made_rows(outputs, name) if made else []
    for fold, run in folds.items():
        if fold not in made:
            row = _write_fold(outputs, settings, fold, run, split_file)
            rows.append({**row, **selection_check(run, data_folder, settings)})
    return _write_manifest(outputs, settings, sorted(rows, key=lambda row: row["fold"]))


def _split_file(outputs: Outputs, base: str) -> Path:
    """The source run's split file, which records each fold's validation ids."""
    split_file = outputs.split_file(base)
    if not split_file.is_file():
        raise UserError(
            f"{split_file}: missing: {base}'s split, needed to record each fold's validation ids"
        )
    return split_file


def _made_rows(outputs: Outputs, name: str) -> list[dict]:
    """The summary rows of a set's folds made already (its CSV summary), to keep beside new ones."""
    return pd.read_csv(outputs.pseudo_set(name).summary).to_dict("records")


def _existing(outputs: Outputs, settings: dict) -> dict | None:
    """The manifest of a set made already with `settings` (perhaps from fewer of the source's
    folds: the missing ones are added, each from its own fold's model, the made ones stay as they
    are); None when there is none. Another set of that name is an error: a run may have trained
    with it."""
    path = outputs.pseudo_set(settings["set"]).manifest
    if not path.is_file():
        return None
    manifest = _with_selection_defaults(json.loads(path.read_text()))
    differ = [k for k, v in settings.items() if manifest.get(k) != v]
    if differ:
        raise UserError(
            f"{path}: set {settings['set']} exists, made with {differ[0]} "
            f"{manifest.get(differ[0])!r} (not {settings[differ[0]]!r}); delete its .json, .csv "
            f"and -cvfold<k>.npz files in {path.parent} to remake it, or pick another --round"
        )
    return manifest


def _write_fold(outputs: Outputs, settings: dict, fold: int, run, split_file: Path) -> dict:
    """Select fold `fold`'s confident test images from its own model's predictions; write its
    file; return its summary row."""
    ids, probs, meta = load_predictions(run.predictions("test"))
    if meta.get("run") != run.run or meta.get("split") != "test":
        raise UserError(f"{run.predictions('test')}: metadata names {meta.get('run')!r}")
    masks = apply_rule(probs, settings)
    keep = select_confident(probs, _selection(settings), masks)
    masks = masks[keep]
    excluded = np.array(sorted(validation_ids(split_file, fold)), dtype=str)
    fold_meta = {**settings, "fold": fold, "source_run": run.run, "test_images": len(ids)}
    with atomic_path(outputs.pseudo_set(settings["set"]).fold(fold)) as tmp:
        np.savez_compressed(
            tmp,
            ids=np.asarray(ids[keep], dtype=str),
            probs=probs[keep].astype(np.float16),
            masks=masks,
            excluded_ids=excluded,
            meta=np.array(json.dumps(fold_meta)),
        )
    empty = int((~masks.any(axis=tuple(range(1, masks.ndim)))).sum())
    return {
        "fold": fold,
        "source_run": run.run,
        "test_images": len(ids),
        "selected": int(keep.sum()),
        "selected_fraction": float(keep.mean()) if len(ids) else 0.0,
        "empty_masks": empty,
    }


def _with_selection_defaults(settings: dict) -> dict:
    """A set's recorded settings with `Selection`'s defaults for keys it lacks (sets made before
    `criterion` existed were made by `share`)."""
    return {**asdict(Selection()), **settings}


def _selection(settings: dict) -> Selection:
    """The selection a set's settings record."""
    full = _with_selection_defaults(settings)
    return Selection(**{key: full[key] for key in asdict(Selection())})


def selection_check(run, data_folder: Path, settings: dict) -> dict:
    """The selection applied to the fold's own validation predictions and scored against their
    masks: the share it keeps and the mean competition score of the kept masks against the rest,
    an out-of-fold estimate of how good the test images' pseudo-labels are (NaN: none kept)."""
    ids, probs, _ = load_predictions(run.predictions("valid"))
    masks = apply_rule(probs, settings)
    keep = select_confident(probs, _selection(settings), masks)
    scores = image_scores(truth_masks(resolve_data_folder(data_folder), ids), masks)
    return {
        "valid_selected_fraction": float(keep.mean()) if len(ids) else 0.0,
        "valid_selected_score": float(scores[keep].mean()) if keep.any() else float("nan"),
        "valid_rest_score": float(scores[~keep].mean()) if (~keep).any() else float("nan"),
    }


def _write_manifest(outputs: Outputs, settings: dict, rows: list[dict]) -> dict:
    """Write the CSV summary, then the manifest that marks the set complete; say what it holds."""
    files = outputs.pseudo_set(settings["set"])
    frame = pd.DataFrame(rows)
    with atomic_path(files.summary) as tmp:
        frame.to_csv(tmp, index=False)
    manifest = {
        **settings,
        "folds": [row["fold"] for row in rows],
        "source_runs": [row["source_run"] for row in rows],
        "selected": {str(row["fold"]): row["selected"] for row in rows},
        "test_images": rows[0]["test_images"],
    }
    write_text(files.manifest, json.dumps(manifest, indent=2) + "\n")
    for row in rows:
        print(
            f"{settings['set']}: fold {row['fold']}: {row['selected']} of {row['test_images']} "
            f"test images confident ({row['empty_masks']} empty masks) from {row['source_run']}; "
            f"on its validation images it keeps {row['valid_selected_fraction']:.0%}, scoring "
            f"{row['valid_selected_score']:.4f} against {row['valid_rest_score']:.4f} for the rest"
        )
    print(f"{settings['set']}: wrote {files.manifest} (round {settings['round']})")
    return manifest


def load_manifest(outputs: Outputs, name: str) -> dict:
    """A set's manifest; a one-line error naming the config key and the expected file."""
    path = outputs.pseudo_set(name).manifest
    if not path.is_file():
        base = round_run(*_previous(name))
        raise UserError(
            f"key '{KEY}': no pseudo-label set {name!r} (expected {path}; make it with "
            f"code/pseudo_label.py --run {base})"
        )
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a pseudo-label manifest ({exc})") from None


def _previous(name: str) -> tuple[str, int]:
    """(root, round - 1) of set `name`: the run the set is usually made from."""
    root, round_ = parse_round_run(name)
    return root, round_ - 1


def load_fold(outputs: Outputs, name: str, fold: int, members: tuple[str, ...]) -> dict:
    """The arrays `members` of fold `fold`'s file of set `name` (npz members load lazily)."""
    manifest = load_manifest(outputs, name)
    if fold not in manifest["folds"]:
        raise UserError(
            f"key '{KEY}': set {name!r} has no fold {fold} (folds {manifest['folds']}; its source "
            f"{manifest['source']} lacks that fold's test predictions)"
        )
    path = outputs.pseudo_set(name).fold(fold)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {member: data[member] for member in members}
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a pseudo-label fold file ({exc})") from None


def check_for_training(
    config: Config, outputs: Outputs, fold: int | None, holdout: bool, valid_ids: np.ndarray
) -> None:
    """Before a fold writes anything: its pseudo-label set exists, has this fold, and came from a
    model that never trained on this fold's validation images."""
    name = config.data.pseudo_labels
    if not name:
        return
    if holdout:
        raise UserError(
            f"key '{KEY}': pseudo-labels are made per cross-validation fold; train a fold of a "
            "config with crossvalidation.folds >= 2 (--cv-currentfold)"
        )
    excluded = load_fold(outputs, name, fold, ("excluded_ids",))["excluded_ids"]
    seen = sorted(set(valid_ids) - set(excluded))
    if seen:
        raise UserError(
            f"key '{KEY}': set {name!r} fold {fold} comes from a model that trained on {len(seen)} "
            f"of this fold's validation images (e.g. {seen[0]}); the splits differ (another "
            "crossvalidation.split_seed, fold count or data set?)"
        )


def training_images(
    config: Config, outputs: Outputs, fold: int, data_folder: Path, run: str
) -> PseudoImages | None:
    """Fold `fold`'s pseudo-labelled test images and masks (None without a set), announced."""
    name = config.data.pseudo_labels
    if not name:
        return None
    from .data import read_images

    arrays = load_fold(outputs, name, fold, ("ids", "masks"))
    ids = arrays["ids"]
    images = read_images(Path(data_folder) / TEST_IMAGES, ids, config.input.channels)
    print(
        f"{run}: + {len(ids)} pseudo-labelled test images of set {name} (fold {fold}'s own "
        "model) in the training part; validation stays labelled-only"
    )
    return PseudoImages(ids, images, arrays["masks"].astype(np.uint8))
