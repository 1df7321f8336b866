"""Whether a stacked "has salt" classifier beats the ensemble rule's own empty decision.

    python code/benchmarks/empty_classifier.py --run RUN [RUN ...] [--weights 0.4,0.6] \
        --data-folder DATA [--outputs-folder OUT]

The ensemble rule (threshold, min area, hysteresis peak) already decides which images are empty:
an image keeps salt only where a body reaches the peak probability. Its false salt on empty
images is most of what a perfect empty decision would add (`headroom.py`'s empty oracle). This
script stacks an image classifier on top: per image it takes features of the blended
out-of-fold probabilities, of the rule's mask and of the seismic image itself, and learns
whether the truth is empty. The rule's mask is emptied where the classifier says so.

Honest by nesting: each fold's decisions come from a classifier fitted on the other folds'
images only, its probability cut chosen there too (by an inner 3-fold cross-validated
prediction), so no image is decided by a model that saw its label. Only images the rule gives
salt are fitted and decided: emptying an empty mask changes nothing. Prints, per classifier, the
nested out-of-fold score against the rule's, the images it emptied (truly empty or not), and
the ROC AUC of its probability against the rule's peak probability alone, then one JSON line.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from headroom import run_members, run_parser  # noqa: E402
from scipy import ndimage  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import cross_val_predict  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from tgssalt.blend import blend, load_oof_probs  # noqa: E402
from tgssalt.data import resolve_data_folder, train_images, truth_masks  # noqa: E402
from tgssalt.errors import UserError, run_cli  # noqa: E402
from tgssalt.metrics import DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS, image_scores  # noqa: E402
from tgssalt.postprocess import apply_rule, tune_rule  # noqa: E402
from tgssalt.splits import read_split  # noqa: E402

CLASSIFIERS = {
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "boosting": lambda: HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0, random_state=0
    ),
}
# the classifier probabilities above which a mask may be emptied
CUTS = np.round(np.linspace(0.05, 0.95, 19), 2)
INNER_FOLDS = 3

FEATURES = (
    "peak", "mean_prob", "area", "area_above_0.3", "area_above_0.7", "mask_confidence",
    "bodies", "rows", "columns", "top_row", "image_std", "image_mean", "texture", "texture_ratio",
)  # fmt: skip


def flat(batch: np.ndarray) -> np.ndarray:
    """(N, H, W) as (N, H * W)."""
    return batch.reshape(len(batch), -1)


def mask_shape_features(masks: np.ndarray) -> list[np.ndarray]:
    """Per mask: its body count, the rows and columns it spans, its first row (H when empty)."""
    bodies = np.array([ndimage.label(m)[1] for m in masks])  # 4-connected, as the rule's
    rows, columns = masks.any(axis=2), masks.any(axis=1)
    top = np.where(rows.any(axis=1), rows.argmax(axis=1), masks.shape[1])
    return [bodies, rows.sum(axis=1), columns.sum(axis=1), top]


def image_features(probs: np.ndarray, masks: np.ndarray, images: np.ndarray) -> np.ndarray:
    """(N, len(FEATURES)) per image: the probabilities' peak, mean and areas, the rule mask's
    area, mean probability and shape, and the image's brightness, contrast and texture
    (mean absolute vertical and horizontal differences, their sum and their ratio)."""
    probs, masks, images = probs.astype(np.float32), masks != 0, images.astype(np.float32) / 255
    area = flat(masks).sum(axis=1)
    confidence = flat(probs * masks).sum(axis=1) / np.maximum(area, 1)
    vertical = np.abs(np.diff(images, axis=1)).mean(axis=(1, 2))
    horizontal = np.abs(np.diff(images, axis=2)).mean(axis=(1, 2))
    columns = [flat(probs).max(axis=1), flat(probs).mean(axis=1), area]
    columns += [flat(probs > 0.3).sum(axis=1), flat(probs > 0.7).sum(axis=1), confidence]
    columns += mask_shape_features(masks)
    columns += [flat(images).std(axis=1), flat(images).mean(axis=1), vertical + horizontal]
    columns.append(vertical / (horizontal + 1e-3))
    return np.stack(columns, axis=1).astype(np.float64)


def best_cut(probability: np.ndarray, gain: np.ndarray) -> float:
    """The cut of `CUTS` whose emptied images (probability above it) gain the most in total;
    the highest such cut on ties, so a classifier that cannot tell empties the fewest."""
    totals = np.array([gain[probability > cut].sum() for cut in CUTS])
    return float(CUTS[np.flatnonzero(totals == totals.max())[-1]])


def nested_decisions(features, gain, is_empty, folds, make) -> tuple[np.ndarray, np.ndarray]:
    """Per image, whether its fold's classifier empties it and the probability it gave, each
    fold decided by a classifier and a cut fitted on the other folds' images only."""
    emptied, probability = np.zeros(len(gain), bool), np.zeros(len(gain))
    for fold in np.unique(folds):
        train, held = folds != fold, folds == fold
        inner = cross_val_predict(
            make(), features[train], is_empty[train], cv=INNER_FOLDS, method="predict_proba"
        )[:, 1]
        cut = best_cut(inner, gain[train])
        probability[held] = (
            make().fit(features[train], is_empty[train]).predict_proba(features[held])[:, 1]
        )
        emptied[held] = probability[held] > cut
    return emptied, probability


def evaluate(features, scores: dict, is_empty, folds, make) -> dict:
    """One classifier, nested over folds, on the images the rule gives salt: its score on all
    images, what it emptied, and its AUC for "truly empty" beside the peak probability's."""
    salt = scores["has_salt"]
    gain = (scores["empty"] - scores["rule"])[salt]
    emptied, probability = nested_decisions(features[salt], gain, is_empty[salt], folds[salt], make)
    total = scores["rule"].sum() + gain[emptied].sum()
    return {
        "score": round(float(total / len(scores["rule"])), 4),
        "emptied": int(emptied.sum()),
        "emptied_truly_empty": int((emptied & is_empty[salt]).sum()),
        "auc": round(float(roc_auc_score(is_empty[salt], probability)), 4),
    }


def rule_scores(truth: np.ndarray, probs: np.ndarray) -> tuple[dict, dict, np.ndarray]:
    """The rule tuned out of fold as `ensemble.py` does, its masks, and per image its score,
    the empty mask's score and whether the rule gives it salt."""
    rule, _ = tune_rule(truth, probs, DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS)
    masks = apply_rule(probs, rule)
    scores = {"rule": image_scores(truth, masks)}
    scores["empty"] = image_scores(truth, np.zeros_like(truth))
    scores["has_salt"] = flat(masks).any(axis=1)
    keys = ("threshold", "min_area", "peak_threshold")
    return {k: rule[k] for k in keys}, scores, masks


def check_learnable(is_empty: np.ndarray, folds: np.ndarray) -> None:
    """A one-line UserError unless every fold's training images (those the rule gives salt)
    hold at least `INNER_FOLDS` truly empty and as many salt images: the inner cross-validation
    needs both kinds in each of its parts."""
    for fold in np.unique(folds):
        train = is_empty[folds != fold]
        if min(train.sum(), (~train).sum()) < INNER_FOLDS:
            raise UserError(
                f"fold {fold}: the other folds' {len(train)} images given salt hold "
                f"{train.sum()} truly empty; a classifier needs {INNER_FOLDS} of each kind"
            )


def compare(truth, probs, images, folds) -> dict:
    """The rule, the empty oracle, the peak's AUC and each classifier's nested result."""
    rule, scores, masks = rule_scores(truth, probs)
    is_empty = ~flat(truth != 0).any(axis=1)
    salt = scores["has_salt"]
    check_learnable(is_empty[salt], folds[salt])
    features = image_features(probs, masks, images)
    peak_auc = roc_auc_score(is_empty[salt], -features[salt, FEATURES.index("peak")])
    found = {"rule": rule, "rule_score": round(float(scores["rule"].mean()), 4)}
    oracle = np.maximum(scores["rule"], scores["empty"]).mean()
    found |= {"empty_oracle": round(float(oracle), 4), "peak_auc": round(float(peak_auc), 4)}
    found["predicted_salt"] = int(salt.sum())
    found["predicted_salt_truly_empty"] = int((salt & is_empty).sum())
    for name, make in CLASSIFIERS.items():
        found[name] = evaluate(features, scores, is_empty, folds, make)
    return found


def load_oof(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The out-of-fold truth, the blended probabilities, the images and their folds."""
    members, weights = run_members(args)
    ids, probs = load_oof_probs(members)
    data = resolve_data_folder(args.data_folder)
    images = train_images(data, ids)[..., 0]
    folds = read_split(members[0].split_file).set_index("id")["fold"].loc[ids].to_numpy()
    return truth_masks(data, ids), blend(probs, weights), images, folds


def print_report(found: dict) -> None:
    """The rule's line, then one line per classifier."""
    print(
        f"rule {found['rule_score']:.4f} (empty oracle {found['empty_oracle']:.4f}); "
        f"{found['predicted_salt']} images given salt, {found['predicted_salt_truly_empty']} "
        f"of them truly empty; peak probability's AUC {found['peak_auc']:.4f}"
    )
    for name in CLASSIFIERS:
        row = found[name]
        print(
            f"{name:>9}: nested {row['score']:.4f}, emptied {row['emptied']} "
            f"({row['emptied_truly_empty']} truly empty), AUC {row['auc']:.4f}"
        )


def main(argv: list[str] | None = None) -> None:
    args = run_parser(__doc__.splitlines()[0]).parse_args(argv)
    truth, probs, images, folds = load_oof(args)
    found = compare(truth, probs, images, folds)
    print_report(found)
    print(json.dumps({"runs": args.run, **found}))


if __name__ == "__main__":
    run_cli(main)
