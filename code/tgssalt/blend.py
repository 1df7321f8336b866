"""Blend several base runs' fold ensembles into one submission, weights tuned out of fold.

Each member is a base run whose folds `ensemble.py` could ensemble alone; each is checked the same
way (`ensemble.check_folds`: fold metadata, test ids, validation ids equal to its own split
file's). A member's out-of-fold (OOF) probabilities are its folds' validation predictions, so
every image's prediction comes from a model of that member that did not train on it. A weighted
mean of such predictions is still made only by models that did not train on that image, whatever
split each member used: members split differently (another split seed or fold count) can be blended,
and a note says so. What they must share are the labelled ids their folds validate (the same
data and `--folds`) and the test ids.

The blend's probability is `sum_m w_m p_m` with weights on the simplex. The search scores every
candidate weight vector (each member alone, equal weights, and with `tuned`/`auto` every vector of
multiples of `--weight-step`) jointly with the threshold/min-area grid
(`metrics.threshold_area_table`). Ties go to the weights nearest equal ones. Tuning weights on the
same images they are scored on flatters them; so the images are also cut into two random halves,
everything is tuned on one half and scored on the other, both ways (`cross_checked_*`): rule
`auto` keeps the tuned weights only when that honest estimate beats equal weights'. The chosen
weights' rule then gets hysteresis's peak threshold when that beats one threshold on held-out
halves (`postprocess.tune_rule`, as for one run's ensemble).

Writes `submissions/<blend>-submission.csv`, `models/<blend>.json` (members, weights, threshold,
peak_threshold, min_area, OOF scores; read by `predict.py`) and `figures/<blend>-weights.png`
(`layout.blend_run` names `<blend>`) and logs them to MLflow (experiment `blends`).
"""

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import figures
from .data import read_ids, resolve_data_folder, truth_masks
from .ensemble import (
    FoldFiles,
    align_ids,
    blank_submission,
    check_folds,
    describe_rule,
    find_folds,
    print_coverage_report,
    print_hysteresis,
    search_grid,
)
from .errors import UserError
from .layout import BLEND_EXPERIMENT, Outputs, blend_run, fold_subset, is_blend_run
from .metrics import (
    DEFAULT_SEARCH_THRESHOLDS,
    MIN_AREAS,
    competition_score,
    coverage_report,
    threshold_area_table,
)
from .postprocess import apply_rule, tune_rule
from .predictions import load_header, load_predictions
from .splits import read_split
from .submission import validate_submission, write_submission

WEIGHT_RULES = ("auto", "tuned", "equal")
DEFAULT_WEIGHT_STEP = 0.1
MAX_WEIGHT_CANDIDATES = 300  # each costs one threshold/min-area search over the OOF images
HALVES_SEED = 0  # the random halves of the cross-check


@dataclass
class Member:
    """One base run of a blend: its checked folds and its test ids."""

    base: str
    folds: list[FoldFiles]
    reference: dict  # the first fold's test metadata
    test_ids: np.ndarray
    alignments: list  # per fold, the index putting its test ids in `test_ids` order
    split_file: Path


def load_member(outputs_folder: Path, base: str, only: list[int] | None = None) -> Member:
    """Find and check base run `base`'s folds, as `ensemble.py` does for one run."""
    folds = find_folds(outputs_folder, base, only)
    split_file = Outputs(Path(outputs_folder)).split_file(base)
    reference, test_ids, alignments = check_folds(folds, split_file)
    return Member(base, folds, reference, test_ids, alignments, split_file)


def load_members(outputs_folder: Path, bases: list[str], only=None) -> list[Member]:
    """Every member, checked, and their labelled and test ids checked to be the same sets."""
    if len(bases) < 2 or len(set(bases)) != len(bases):
        raise UserError(f"a blend needs two or more different runs, got {', '.join(bases)}")
    members = [load_member(outputs_folder, base, only) for base in bases]
    first = members[0]
    oof_ids = oof_id_list(first)
    for member in members[1:]:
        _same_ids(oof_id_list(member), oof_ids, member, first, "labelled (validation)")
        _same_ids(member.test_ids, first.test_ids, member, first, "test")
    return members


def oof_id_list(member: Member) -> np.ndarray:
    """The ids the member's folds validate, in fold order, read from the files' headers."""
    return np.concatenate([load_header(files.valid)[0] for files in member.folds])


def _same_ids(ids: np.ndarray, reference: np.ndarray, member: Member, first: Member, what: str):
    """A one-line UserError unless `ids` and `reference` hold the same ids."""
    if len(ids) == len(reference) and set(ids) == set(reference):
        return
    differ = len(set(ids) ^ set(reference))
    raise UserError(
        f"{member.folds[0].valid.parent}: {member.base}'s folds have {len(ids)} {what} ids, "
        f"{first.base}'s {len(reference)} ({differ} in only one); blend only runs trained and "
        "predicted on the same data, with the same --folds"
    )


def same_split(members: list[Member]) -> bool:
    """Whether every member validated each image in the same fold (one split file's rows)."""
    frames = [read_split(m.split_file).set_index("id")["fold"].sort_index() for m in members]
    return all(frame.equals(frames[0]) for frame in frames[1:])


def load_oof_probs(members: list[Member]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The labelled ids, sorted, and each member's float16 OOF probabilities in that order."""
    ids, probs = None, []
    for member in members:
        member_ids, member_probs = [], []
        for files in member.folds:
            fold_ids, fold_probs, _ = load_predictions(files.valid)
            member_ids.append(fold_ids)
            member_probs.append(fold_probs)
        member_ids = np.concatenate(member_ids)
        order = np.argsort(member_ids, kind="stable")
        ids = member_ids[order] if ids is None else ids
        probs.append(np.concatenate(member_probs)[order])
    return ids, probs


def blend(probs: list[np.ndarray], weights) -> np.ndarray:
    """The weighted sum of the members' probabilities, float32; a member with weight 1 alone
    keeps its own array (and dtype), so its score is exactly its own ensemble's."""
    weights = np.asarray(weights, dtype=np.float64)
    if np.count_nonzero(weights) == 1:
        return probs[int(np.flatnonzero(weights)[0])]
    total = np.zeros(probs[0].shape, np.float32)
    for member_probs, weight in zip(probs, weights, strict=True):
        if weight:
            total += np.float32(weight) * member_probs.astype(np.float32)
    return total


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """Every weight vector (K, n_members) of multiples of `step` that sums to 1."""
    units = round(1 / step) if step > 0 else 0
    if units < 1 or not math.isclose(units * step, 1, abs_tol=1e-9):
        raise UserError(f"--weight-step {step}: must divide 1, e.g. 0.1, 0.05 or 0.25")
    count = math.comb(units + n_members - 1, n_members - 1)
    if count > MAX_WEIGHT_CANDIDATES:
        raise UserError(
            f"--weight-step {step} gives {count} weight vectors for {n_members} members (at "
            f"most {MAX_WEIGHT_CANDIDATES}): use a coarser step, or --weights equal"
        )
    heads = [c for c in itertools.product(range(units + 1), repeat=n_members - 1)]
    return np.array([[*c, units - sum(c)] for c in heads if sum(c) <= units]) / units


def parse_weights(text: str | None, n_members: int) -> str | np.ndarray:
    """`--weights`: a rule of `WEIGHT_RULES` (default auto) or one weight per member, comma
    separated, normalised to sum 1."""
    if text is None or text in WEIGHT_RULES:
        return text or "auto"
    try:
        weights = np.array([float(part) for part in text.split(",")])
    except ValueError:
        weights = np.array([])
    if len(weights) != n_members or (weights < 0).any() or weights.sum() <= 0:
        raise UserError(
            f"--weights {text!r}: give {', '.join(WEIGHT_RULES)}, or {n_members} weights >= 0 "
            "separated by commas (not all 0)"
        )
    return weights / weights.sum()


def candidate_weights(n_members: int, rule: str | np.ndarray, step: float) -> np.ndarray:
    """The weight vectors to score: each member alone, equal weights, then the simplex grid
    (rules auto and tuned) or the given weights; without repeats, in that order."""
    rows = [np.eye(n_members), np.full((1, n_members), 1 / n_members)]
    if isinstance(rule, np.ndarray):
        rows.append(rule[None])
    elif rule != "equal":
        rows.append(simplex_grid(n_members, step))
    unique = {}
    for row in np.concatenate(rows):
        unique.setdefault(tuple(np.round(row, 9)), row)
    return np.array(list(unique.values()))


def random_halves(n_images: int) -> np.ndarray:
    """0 or 1 per image, a seeded random half each, for the cross-check."""
    if n_images < 2:
        raise UserError(f"{n_images} out-of-fold image(s): too few to blend")
    return np.random.default_rng(HALVES_SEED).permutation(n_images) % 2


def half_sums(truth, probs, candidates, thresholds, min_areas, halves) -> np.ndarray:
    """Per candidate weight vector, the sums over each half of the images' scores under every
    (threshold, min_area): (candidates, 2, thresholds, min_areas)."""
    from tqdm import tqdm

    sums = np.empty((len(candidates), 2, len(thresholds), len(min_areas)))
    for k, weights in enumerate(tqdm(candidates, desc="weights", unit="vector", disable=None)):
        table = threshold_area_table(truth, blend(probs, weights), thresholds, min_areas)
        sums[k, 0], sums[k, 1] = table[halves == 0].sum(axis=0), table[halves == 1].sum(axis=0)
    return sums


def best_point(sums: np.ndarray, count: int, candidates: np.ndarray) -> tuple[int, int, int]:
    """The best (candidate, threshold, min_area) indices of `sums` (K, T, A) by mean score; ties
    go to the weights nearest equal ones, then the smallest min_area, then smallest threshold."""
    scores = sums / count
    near = np.argwhere(scores >= scores.max() - 1e-12)
    equal = np.full(candidates.shape[1], 1 / candidates.shape[1])
    distance = np.round(np.abs(candidates[near[:, 0]] - equal).sum(axis=1), 9)
    k, t, a = near[np.lexsort((near[:, 1], near[:, 2], distance))[0]]
    return int(k), int(t), int(a)


def cross_checked(sums: np.ndarray, counts: np.ndarray, candidates: np.ndarray) -> float:
    """The score of tuning among `candidates` on one half and scoring on the other, both ways:
    what the tuning is worth on images it did not see."""
    held_out = 0.0
    for half in (0, 1):
        k, t, a = best_point(sums[:, half], counts[half], candidates)
        held_out += sums[k, 1 - half, t, a]
    return float(held_out / counts.sum())


@dataclass
class Search:
    """The scored candidates: their weights, per-half sums and image counts per half."""

    candidates: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    thresholds: np.ndarray
    min_areas: np.ndarray

    def best(self, indices) -> tuple[int, float, int, float]:
        """(candidate, threshold, min_area, OOF score) of the best of candidates `indices`."""
        indices = np.asarray(indices)
        sums = self.sums[indices].sum(axis=1)
        k, t, a = best_point(sums, self.counts.sum(), self.candidates[indices])
        score = float(sums[k, t, a] / self.counts.sum())
        return int(indices[k]), float(self.thresholds[t]), int(self.min_areas[a]), score

    def cross_checked(self, indices) -> float:
        indices = np.asarray(indices)
        return cross_checked(self.sums[indices], self.counts, self.candidates[indices])

    def index(self, weights) -> int:
        """The index of candidate `weights`."""
        return int(np.argmin(np.abs(self.candidates - np.asarray(weights)).sum(axis=1)))


def search_weights(truth, probs, rule, step, thresholds, min_areas) -> Search:
    """Score every candidate weight vector of `rule` on the OOF images, by halves."""
    n_members = len(probs)
    candidates = candidate_weights(n_members, rule, step)
    halves = random_halves(len(truth))
    print(
        f"searching {len(candidates)} weight vector(s) x {len(thresholds)} thresholds x "
        f"{len(min_areas)} min_areas on {len(truth)} out-of-fold images"
    )
    sums = half_sums(truth, probs, candidates, thresholds, min_areas, halves)
    counts = np.array([(halves == 0).sum(), (halves == 1).sum()])
    return Search(candidates, sums, counts, thresholds, min_areas)


def choose(search: Search, rule) -> dict:
    """The blend's weights, threshold and min_area under `rule`, and the scores that compare
    them: equal weights, tuned weights, and their cross-checks."""
    n_members = search.candidates.shape[1]
    equal = search.index(np.full(n_members, 1 / n_members))
    name = "given" if isinstance(rule, np.ndarray) else rule
    _, threshold, min_area, score = search.best([equal])
    summary = {
        "weights_rule": name,
        "oof_score_equal_weights": score,
        "threshold_equal_weights": threshold,
        "min_area_equal_weights": min_area,
        "cross_checked_oof_score_equal_weights": search.cross_checked([equal]),
    }
    if name == "given":
        chosen = search.index(rule)
    else:
        chosen = equal if name == "equal" else _tuned(search, summary, equal, name)
    summary["weights_kept"] = (
        "equal" if chosen == equal else "given" if name == "given" else "tuned"
    )
    k, threshold, min_area, score = search.best([chosen])
    summary.update(weights=[float(w) for w in search.candidates[k]], threshold=threshold)
    summary.update(min_area=min_area, oof_score=score)
    return summary


def _tuned(search: Search, summary: dict, equal: int, rule: str) -> int:
    """Tune the weights over every candidate; record the tuned scores; return the candidate
    rule `rule` keeps (auto: the tuned one only if its cross-check beats equal weights')."""
    every = np.arange(len(search.candidates))
    tuned, _, _, score = search.best(every)
    summary["tuned_weights"] = [float(w) for w in search.candidates[tuned]]
    summary["oof_score_tuned_weights"] = score
    summary["cross_checked_oof_score_tuned_weights"] = search.cross_checked(every)
    cross_tuned = summary["cross_checked_oof_score_tuned_weights"]
    beats = cross_tuned > summary["cross_checked_oof_score_equal_weights"]
    return tuned if rule == "tuned" or beats else equal


def member_scores(search: Search, members: list[Member]) -> list[dict]:
    """Each member alone (weight 1): its one-threshold OOF score, threshold and min_area (as
    `ensemble.py` reports them for that run, before hysteresis), and its folds."""
    rows = []
    for m, member in enumerate(members):
        alone = np.eye(len(members))[m]
        _, threshold, min_area, score = search.best([search.index(alone)])
        rows.append(
            {
                "run": member.base,
                "oof_score": score,
                "threshold": threshold,
                "min_area": min_area,
                "folds": member.reference["folds"],
                "folds_used": [f.fold for f in member.folds],
                "split_file": str(member.split_file),
            }
        )
    return rows


def blended_test_probs(members: list[Member], weights) -> tuple[np.ndarray, np.ndarray]:
    """The first member's test ids and the blend's test probabilities (N, 101, 101) float32:
    per member the mean of its folds' test probabilities, weighted. One fold in memory at a time.
    Reusable wherever a blend's test probabilities are needed (pseudo-labels)."""
    ids, total = members[0].test_ids, None
    for member, weight in zip(members, weights, strict=True):
        to_first = align_ids(member.test_ids, ids, member.folds[0].test)
        for files, index in zip(member.folds, member.alignments, strict=True):
            _, probs, _ = load_predictions(files.test)
            if len(probs) != len(member.test_ids):
                raise UserError(f"{files.test}: {len(probs)} probability maps for its ids")
            total = np.zeros(probs.shape, np.float32) if total is None else total
            if weight:
                total += np.float32(weight / len(member.folds)) * probs[index][to_first]
    return ids, total


def ensemble_test_probs(outputs_folder: Path, run: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(test ids, test probabilities, summary) of a finished ensemble: a blend run (its JSON's
    members and weights) or a base run (its folds' mean, `<base>-ensemble.json`). The summary
    holds the `threshold` and `min_area` that turn the probabilities into its submission."""
    outputs = Outputs(Path(outputs_folder))
    path = outputs.blend(run).summary if is_blend_run(run) else outputs.ensemble(run).summary
    if not path.is_file():
        raise UserError(f"{path}: missing; run code/ensemble.py for {run} first")
    summary = json.loads(path.read_text())
    rows = summary["members"] if is_blend_run(run) else [{"run": run, **summary}]
    weights = summary["weights"] if is_blend_run(run) else [1.0]
    members = [load_member(outputs_folder, row["run"], row["folds_used"]) for row in rows]
    ids, probs = blended_test_probs(members, weights)
    return ids, probs, summary


def run_blend(
    outputs_folder: Path,
    bases: list[str],
    data_folder: Path,
    thresholds: np.ndarray = DEFAULT_SEARCH_THRESHOLDS,
    min_areas: np.ndarray = MIN_AREAS,
    only: list[int] | None = None,
    options: dict | None = None,
) -> dict:
    """Blend the fold ensembles of base runs `bases` (their folds in `only`, default all) into
    one submission; return the summary it writes.

    `options`: `weights` (a rule of `WEIGHT_RULES`, default auto, or one weight per member),
    `weight_step` (0.1) and `name` (the blend's name without -blend; default the members').
    Every check runs before any output is written.
    """
    options = {"weights": None, "weight_step": DEFAULT_WEIGHT_STEP, "name": None, **(options or {})}
    data_folder = resolve_data_folder(data_folder)
    thresholds, min_areas = search_grid(thresholds, min_areas)
    rule = parse_weights(options["weights"], len(bases))
    run, members = _checked_members(outputs_folder, list(bases), data_folder, only, options, rule)
    split = _announce(run, members)
    oof_ids, probs = load_oof_probs(members)
    truth = truth_masks(data_folder, oof_ids)
    search = search_weights(truth, probs, rule, options["weight_step"], thresholds, min_areas)
    summary = {"run": run, **choose(search, rule), "members": member_scores(search, members)}
    # The chosen weights' rule, now with hysteresis's peak if it is worth it (the same one
    # threshold and min_area otherwise).
    summary.update(tune_rule(truth, blend(probs, summary["weights"]), thresholds, min_areas)[0])
    summary["oof_by_coverage_class"] = oof_coverage(truth, probs, summary)
    ids, test_probs = blended_test_probs(members, summary["weights"])
    masks = apply_rule(test_probs, summary)
    summary.update(_description(summary, split, search, truth, masks, options["weight_step"]))
    _write_outputs(Path(outputs_folder), summary, ids, masks, search)
    return summary


def _checked_members(
    outputs_folder: Path,
    bases: list[str],
    data_folder: Path,
    only: list[int] | None,
    options: dict,
    rule: str | np.ndarray,
) -> tuple[str, list[Member]]:
    """The blend's run name and its loaded members, after every check that can fail cheaply
    (name, weight step, members' folds, the test ids against the sample submission)."""
    blend_run(bases, options["name"])  # a bad name fails before reading
    candidate_weights(len(bases), rule, options["weight_step"])  # a bad step fails before reading
    members = load_members(outputs_folder, bases, only)
    first = members[0]
    subset = fold_subset([f.fold for f in first.folds], first.reference["folds"])
    expected_ids = read_ids(data_folder / "sample_submission.csv")
    validate_submission(
        blank_submission(first.test_ids), expected_ids, name=str(first.folds[0].test)
    )
    return blend_run(bases, options["name"], subset), members


def oof_coverage(truth, probs: list[np.ndarray], summary: dict) -> list[dict]:
    """The blend's out-of-fold score lost per coverage class, at its weights and rule."""
    return coverage_report(truth, apply_rule(blend(probs, summary["weights"]), summary))


def _announce(run: str, members: list[Member]) -> bool:
    """Say what is blended; note when the members were split differently. Returns whether
    they share one split."""
    names = ", ".join(
        f"{m.base} (fold(s) {','.join(str(f.fold) for f in m.folds)})" for m in members
    )
    print(f"{run}: blending {names}")
    split = same_split(members)
    if not split:
        print(
            "note: the members were split into folds differently; each member's validation "
            "predictions are still out of fold for it, so the blend's out-of-fold score holds"
        )
    return split


def _description(summary: dict, split: bool, search: Search, truth, masks, step) -> dict:
    """The rest of the summary JSON: flat per-member scores (MLflow metrics), grids, counts."""
    flat = {f"member{m}_oof_score": row["oof_score"] for m, row in enumerate(summary["members"])}
    return {
        **flat,
        "best_member_oof_score": max(row["oof_score"] for row in summary["members"]),
        "same_split": split,
        "weight_step": step if summary["weights_rule"] in ("auto", "tuned") else None,
        "weight_candidates": int(len(search.candidates)),
        "thresholds": [float(t) for t in search.thresholds],
        "min_areas": [int(a) for a in search.min_areas],
        "empty_baseline_score": competition_score(truth, np.zeros_like(truth)),
        "oof_images": int(len(truth)),
        "test_images": int(len(masks)),
        "test_empty_fraction": float((masks.reshape(len(masks), -1).max(axis=1) == 0).mean()),
    }


def _write_outputs(out: Path, summary: dict, ids, masks, search: Search) -> None:
    """Write the submission, figure and summary JSON, and log them to MLflow."""
    paths = Outputs(out).blend(summary["run"])
    write_submission(paths.submission, ids, masks)
    summary["submission"] = str(paths.submission)
    names = [row["run"] for row in summary["members"]]
    best = [search.best([k])[3] for k in range(len(search.candidates))]
    figures.plot_blend(names, summary, search.candidates, np.array(best), paths.figure)
    from .tracking import log_fold_metrics, mlflow_run  # imports keras: only when needed

    params = {k: summary[k] for k in ("weights", "threshold", "min_area", "weights_rule")}
    params["peak_threshold"] = summary["peak_threshold"]
    params.update(members=names, thresholds=summary["thresholds"], min_areas=summary["min_areas"])
    with mlflow_run(out, BLEND_EXPERIMENT, summary["run"], params) as mlflow:
        log_fold_metrics(summary, paths.summary)
        mlflow.log_artifact(str(paths.figure))
    _report(summary, paths.submission)


def _report(summary: dict, submission: Path) -> None:
    """Print each member's and the blend's OOF scores."""
    print_coverage_report(summary["oof_by_coverage_class"])
    print("weight  oof score  member")
    for weight, row in zip(summary["weights"], summary["members"], strict=True):
        print(f"{weight:>6.2f}  {row['oof_score']:.4f}     {row['run']}")
    tuned = summary.get("oof_score_tuned_weights")
    print_hysteresis(summary)
    print(
        f"{summary['run']}: out-of-fold score {summary['oof_score']:.4f} at "
        f"{describe_rule(summary)} ({summary['weights_kept']} weights; equal weights "
        f"{summary['oof_score_equal_weights']:.4f}"
        + (f", tuned {tuned:.4f}" if tuned is not None else "")
        + f"); wrote {submission}"
    )
