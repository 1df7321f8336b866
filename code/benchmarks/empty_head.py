"""How much the empty-mask head adds and how best to use it: a config's folds, rescored OOF.

    python code/benchmarks/empty_head.py --config-file CONFIG --data-folder DATA \
        [--outputs-folder OUT]

For a deep-supervised config (`model.deep_supervision`) whose folds are trained, it re-predicts
each fold's validation images with every model member (stage-2 snapshots) and flip, keeping the
mask probabilities and the head's "has salt" probability apart, then searches the
(threshold, min_area) rule out of fold for each way of combining them:

- `gate_each`: each member's and flip's mask emptied where its own head says "no salt" (0.5 or
  less), then averaged: what models exported with `GatedSaltProbability` predicted;
- `no_gate`: the averaged mask alone (the head ignored);
- `gate_mean_0.5`: the averaged mask emptied where the averaged head probability is 0.5 or less:
  what `SaltHeadProbabilities` models predict (`inference.predict_probs`);
- `gate_mean_searched`: the same with the head's threshold searched too (0.10 to 0.90);
- `product`: the averaged mask times the averaged head probability.

A halves cross-check (tune on a random half, score the other, 20 splits) says whether the
searched gate beats `gate_each` beyond the search's own optimism. Each fold's saved validation
probabilities are checked against the mix its model exports. Prints one JSON line.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from tgssalt.config import STAGE_NAMES, load_config  # noqa: E402
from tgssalt.data import resolve_data_folder, train_images, truth_masks  # noqa: E402
from tgssalt.ensemble import find_folds  # noqa: E402
from tgssalt.layout import Outputs, base_run  # noqa: E402
from tgssalt.metrics import (  # noqa: E402
    DEFAULT_SEARCH_THRESHOLDS,
    MIN_AREAS,
    threshold_area_table,
)
from tgssalt.models.heads import head_probabilities  # noqa: E402
from tgssalt.models.layers import GatedSaltProbability, SaltHeadProbabilities  # noqa: E402
from tgssalt.pipeline import preprocess  # noqa: E402
from tgssalt.sizes import to_original_size  # noqa: E402

GATES = np.round(np.arange(0.10, 0.91, 0.05), 2)


def packed_members(model: keras.Model) -> list[keras.Model]:
    """One model per member of an exported probability model (a snapshot ensemble nests them),
    each cut before its probability layer: the packed logits of every head."""
    exports = (GatedSaltProbability, SaltHeadProbabilities)
    gates = [layer for layer in model.layers if isinstance(layer, exports)]
    if gates:
        return [keras.Model(model.input, gates[0].input)]
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return [member for layer in nested for member in packed_members(layer)]


def member_heads(member: keras.Model, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mask probabilities (N, s, s, 1), head "has salt" probabilities (N,)) for x and its flip."""
    heads = []
    for flip in (False, True):
        packed = member.predict(x[:, :, ::-1] if flip else x, batch_size=64, verbose=0)
        probs = keras.ops.convert_to_numpy(head_probabilities(packed))
        probs = probs[:, :, ::-1] if flip else probs
        heads.append((probs[..., :1], probs[:, 0, 0, 1]))
    return heads


def fold_heads(outputs: Outputs, fold, data: Path) -> dict:
    """A fold's validation ids, its averaged mask and head probabilities, the `gate_each` mix."""
    saved = np.load(fold.valid)
    run = outputs.run(fold.run)
    config = load_config(run.config)
    stage = [s for s in STAGE_NAMES if run.model(s).is_file()][-1]
    members = packed_members(keras.saving.load_model(run.model(stage), compile=False))
    if not members:
        sys.exit(f"error: {run.model(stage)}: no empty-mask head (model.deep_supervision is off)")
    images = train_images(data, saved["ids"], config.input.channels)
    heads = [h for member in members for h in member_heads(member, preprocess(images, config))]
    gate_each = np.mean([mask * (salt > 0.5)[:, None, None, None] for mask, salt in heads], axis=0)
    oof = {
        "ids": saved["ids"],
        "mask": to_original_size(np.mean([m for m, _ in heads], axis=0), config.input),
        "salt": np.mean([s for _, s in heads], axis=0),
        "gate_each": to_original_size(gate_each, config.input),
    }
    check_saved(fold.run, len(members), saved["probs"].astype(np.float32), oof)
    return oof


def check_saved(run: str, members: int, saved: np.ndarray, oof: dict) -> None:
    """Print how far the fold's saved validation probabilities are from either mix."""
    gate_mean = oof["mask"] * (oof["salt"] > 0.5)[:, None, None]
    each, mean = (float(np.abs(mix - saved).max()) for mix in (oof["gate_each"], gate_mean))
    print(f"{run}: {members} members; saved vs gate_each {each:.1e}, vs gate_mean_0.5 {mean:.1e}")


def rule_tables(truth: np.ndarray, oof: dict) -> dict[str, np.ndarray]:
    """Per-image scores (N, thresholds, min_areas) of each way to combine the heads; the searched
    gate's as (gates, N, thresholds, min_areas)."""

    def table(probs):
        return threshold_area_table(truth, probs, DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS)

    ungated = table(oof["mask"])
    empty = (~truth.reshape(len(truth), -1).any(axis=1)).astype(np.float64)[:, None, None]
    gated = np.stack([np.where((oof["salt"] > g)[:, None, None], ungated, empty) for g in GATES])
    return {
        "gate_each": table(oof["gate_each"]),
        "no_gate": ungated,
        "gate_mean_0.5": gated[int(np.flatnonzero(GATES == 0.5)[0])],
        "product": table(oof["mask"] * oof["salt"][:, None, None]),
        "gate_mean_searched": gated,
    }


def best_rule(scores: np.ndarray, images: np.ndarray) -> tuple[tuple, float]:
    """The best (…, threshold, min_area) index of per-image scores on `images`, and its mean."""
    means = scores[..., images, :, :].mean(axis=-3)
    index = np.unravel_index(int(np.argmax(means)), means.shape)
    return index, float(means[index])


def describe(name: str, scores: np.ndarray) -> dict:
    """A rule's out-of-fold score and the (gate,) threshold and min_area that give it."""
    index, score = best_rule(scores, np.arange(scores.shape[-3]))
    found = {
        "score": round(score, 4),
        "threshold": round(float(DEFAULT_SEARCH_THRESHOLDS[index[-2]]), 3),
        "min_area": int(MIN_AREAS[index[-1]]),
    }
    if scores.ndim == 4:
        found["gate"] = float(GATES[index[0]])
    return found


def halves_gain(tables: dict, n: int, splits: int = 20) -> tuple[float, float]:
    """The searched gate's gain over `gate_each` on held-out halves: mean and std over splits."""
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(splits):
        order = rng.permutation(n)
        tune, held = order[: n // 2], order[n // 2 :]
        new, _ = best_rule(tables["gate_mean_searched"], tune)
        old, _ = best_rule(tables["gate_each"], tune)
        gains.append(
            tables["gate_mean_searched"][new[0], held, new[1], new[2]].mean()
            - tables["gate_each"][held, old[0], old[1]].mean()
        )
    return float(np.mean(gains)), float(np.std(gains))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", type=Path, required=True)
    parser.add_argument("--data-folder", type=Path, default=Path("data"))
    parser.add_argument("--outputs-folder", type=Path, default=Path("outputs"))
    args = parser.parse_args()
    data = resolve_data_folder(args.data_folder)
    outputs = Outputs(args.outputs_folder)
    folds = find_folds(args.outputs_folder, base_run(load_config(args.config_file)))
    parts = [fold_heads(outputs, fold, data) for fold in folds]
    oof = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    tables = rule_tables(truth_masks(data, oof["ids"]), oof)
    report = {"folds": [fold.fold for fold in folds], "images": len(oof["ids"])}
    report.update({name: describe(name, scores) for name, scores in tables.items()})
    gain, spread = halves_gain(tables, len(oof["ids"]))
    report["halves_gain_searched_over_gate_each"] = {
        "mean": round(gain, 4),
        "std": round(spread, 4),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
