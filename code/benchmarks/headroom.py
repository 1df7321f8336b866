"""What post-processing could still add to a run or blend: its tuned rule against oracles.

    python code/benchmarks/headroom.py --run RUN [RUN ...] [--weights 0.4,0.6] --data-folder DATA
        [--outputs-folder OUT]

It blends the runs' out-of-fold probabilities (`ensemble.py`'s files; equal weights unless
given), tunes the ensemble rule on them as `ensemble.py` does (threshold, min area, hysteresis
peak), then scores three oracles that know the truth, each working on the same probabilities:

- `empty_oracle`: the rule's masks, each emptied exactly when that scores more: a perfect
  "has salt" decision, the best any gate, min area or image classifier can do on these masks;
- `body_oracle`: the better of that and each rule mask's 4-connected bodies at least half salt
  alone: body filtering (min area, hysteresis, a learned body classifier) that knows the truth;
- `threshold_oracle`: the rule with each image at its own best threshold of the search grid (min
  area kept, a hysteresis peak moved along): a perfect per-image threshold.

The empty and threshold oracles bound their kind of post-processing; the body oracle nearly
(it tries one subset of each mask's bodies, not every subset). Score above them must come from
better probabilities, that is from the model. Prints a table per coverage class of the truth,
with the images whose salt has no probability above the lowest threshold searched ("unseen"),
and one JSON line.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from tgssalt.blend import blend, load_member, load_members, load_oof_probs, parse_weights  # noqa: E402
from tgssalt.data import resolve_data_folder, truth_masks  # noqa: E402
from tgssalt.errors import UserError, run_cli  # noqa: E402
from tgssalt.hysteresis import IN_PLANE, as_batch  # noqa: E402
from tgssalt.metrics import (  # noqa: E402
    DEFAULT_SEARCH_THRESHOLDS,
    MIN_AREAS,
    binarize,
    coverage_class,
    image_scores,
)
from tgssalt.postprocess import apply_rule, tune_rule  # noqa: E402


def empty_oracle(truth: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the better of its mask's score and the empty mask's."""
    return np.maximum(image_scores(truth, masks), image_scores(truth, np.zeros_like(truth)))


def salt_bodies(truth: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """`masks` with only the bodies whose pixels are at least half salt in `truth`."""
    truth, masks = as_batch(truth, "truth") != 0, as_batch(masks, "masks") != 0
    bodies, count = ndimage.label(masks, structure=IN_PLANE)
    if count == 0:
        return masks
    index = np.arange(1, count + 1)
    salt = ndimage.sum_labels(truth, bodies, index)
    area = ndimage.sum_labels(np.ones_like(truth), bodies, index)
    return np.concatenate([[False], 2 * salt >= area])[bodies]


def body_oracle(truth: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the best score of its mask, the mask's mostly-salt bodies and the empty mask
    (dropping a body partly salt can lower the IoU, so the whole mask stays a candidate)."""
    kept = image_scores(truth, salt_bodies(truth, masks))
    return np.maximum(empty_oracle(truth, masks), kept)


def threshold_oracle(truth: np.ndarray, probs: np.ndarray, rule: dict, thresholds) -> np.ndarray:
    """Per image, its best score under `rule` with the threshold replaced by each of
    `thresholds` (the min area kept, a hysteresis peak moved with the threshold)."""
    gap = None if rule["peak_threshold"] is None else rule["peak_threshold"] - rule["threshold"]
    scores = []
    for t in thresholds:
        masks = binarize(probs, t, rule["min_area"], None if gap is None else t + gap)
        scores.append(image_scores(truth, masks))
    return np.max(scores, axis=0)


def unseen(truth: np.ndarray, probs: np.ndarray, threshold: float) -> np.ndarray:
    """Per image: it has salt, and none of its salt pixels has a probability above `threshold`
    (no rule searched from there up can find any of it)."""
    truth, probs = as_batch(truth, "truth") != 0, as_batch(probs, "probs")
    inside = np.where(truth, probs, 0).reshape(len(truth), -1).max(axis=1)
    return truth.reshape(len(truth), -1).any(axis=1) & (inside <= threshold)


def headroom(truth: np.ndarray, probs: np.ndarray, thresholds, min_areas) -> dict:
    """The tuned rule, per-image scores of it and of each oracle (arrays by name), and which
    images hold salt the lowest threshold does not see."""
    rule, _ = tune_rule(truth, probs, thresholds, min_areas)
    masks = apply_rule(probs, rule)
    scores = {
        "rule": image_scores(truth, masks),
        "empty_oracle": empty_oracle(truth, masks),
        "body_oracle": body_oracle(truth, masks),
        "threshold_oracle": threshold_oracle(truth, probs, rule, thresholds),
    }
    keys = ("threshold", "min_area", "peak_threshold")
    missed = unseen(truth, probs, min(thresholds))
    return {"rule": {k: rule[k] for k in keys}, "scores": scores, "unseen": missed}


def by_coverage_class(truth: np.ndarray, found: dict) -> list[dict]:
    """Per coverage class of the truth: its images, how many are unseen, each mean score."""
    classes = coverage_class(truth)
    rows = []
    for c in np.unique(classes):
        part = classes == c
        row = {"coverage_class": int(c), "images": int(part.sum())}
        row["unseen"] = int(found["unseen"][part].sum())
        rows.append(row | {name: float(s[part].mean()) for name, s in found["scores"].items()})
    return rows


def print_table(rows: list[dict], scores: dict) -> None:
    """The per-class counts and means, then the overall ones, a column per score."""
    names = list(scores)
    head = f"{'salt coverage':>13}  {'images':>6}  {'unseen':>6}  "
    print(head + "  ".join(f"{n:>16}" for n in names))
    for row in rows:
        c = row["coverage_class"]
        label = "empty" if c == 0 else f"{10 * (c - 1)}-{10 * c}%"
        cells = "  ".join(f"{row[n]:16.4f}" for n in names)
        print(f"{label:>13}  {row['images']:>6}  {row['unseen']:>6}  {cells}")
    total = "  ".join(f"{scores[n].mean():16.4f}" for n in names)
    unseen_total = sum(row["unseen"] for row in rows)
    print(f"{'all':>13}  {len(scores['rule']):>6}  {unseen_total:>6}  {total}")


def member_weights(text: str | None, n_members: int) -> np.ndarray:
    """`--weights`: one weight per run (normalised), or equal ones; a search rule is refused."""
    weights = parse_weights(text or "equal", n_members)
    if isinstance(weights, str) and weights != "equal":
        raise UserError(f"--weights {text}: give equal, or {n_members} weights separated by commas")
    return np.full(n_members, 1 / n_members) if isinstance(weights, str) else weights


def run_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of a script that reads finished runs' out-of-fold predictions."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", nargs="+", required=True, help="finished runs, e.g. name-1")
    parser.add_argument("--weights", help="one weight per run, comma separated (default equal)")
    parser.add_argument("--data-folder", type=Path, required=True)
    parser.add_argument("--outputs-folder", type=Path, default=Path("outputs"))
    return parser


def run_members(args) -> tuple[list, np.ndarray]:
    """`--run`'s members, checked to blend (one run alone is its own member), and their weights."""
    weights = member_weights(args.weights, len(args.run))
    if len(args.run) > 1:
        return load_members(args.outputs_folder, args.run), weights
    return [load_member(args.outputs_folder, args.run[0])], weights


def main(argv: list[str] | None = None) -> None:
    args = run_parser(__doc__.splitlines()[0]).parse_args(argv)
    members, weights = run_members(args)
    ids, probs = load_oof_probs(members)
    truth = truth_masks(resolve_data_folder(args.data_folder), ids)
    found = headroom(truth, blend(probs, weights), DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS)
    print_table(by_coverage_class(truth, found), found["scores"])
    means = {name: round(float(s.mean()), 4) for name, s in found["scores"].items()}
    print(json.dumps({"runs": args.run, "weights": weights.tolist(), **found["rule"], **means}))


if __name__ == "__main__":
    run_cli(main)
