"""Does hysteresis thresholding beat the ensemble's one threshold? Trained runs' OOF, rescored.

    python code/benchmarks/hysteresis.py --run RUN [RUN ...] --data-folder DATA \
        [--outputs-folder OUT]

The runs' out-of-fold probabilities are averaged with equal weights (one run alone is fine).
Hysteresis keeps each connected salt body of `probs > low` whose highest probability exceeds
`high`: a faint body survives when part of it is sure, a faint speck alone does not. With
`high == low` it is the ensemble's `probs > threshold`, so one grid holds both rules; the
min-area rule follows either. A halves cross-check (tune both rules on a random half of the
images, score the other half, 20 splits) says whether hysteresis beats one threshold beyond its
larger search's optimism. Prints one JSON line.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from tgssalt.blend import blend, load_member, load_members, load_oof_probs  # noqa: E402
from tgssalt.data import resolve_data_folder, truth_masks  # noqa: E402
from tgssalt.ensemble import MIN_AREAS  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402
from tgssalt.metrics import threshold_area_table  # noqa: E402

LOWS = np.round(np.arange(0.30, 0.561, 0.02), 2)
GAPS = np.round(np.arange(0.0, 0.161, 0.02), 2)  # high = low + gap
IN_PLANE = np.pad(np.ones((1, 3, 3), bool), ((1, 1), (0, 0), (0, 0)))  # 8-connected, per image


def hysteresis_tables(truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Every image's score (N, lows, gaps, min areas) under each (low, high, min_area) rule."""
    table = np.empty((len(truth), len(LOWS), len(GAPS), len(MIN_AREAS)), np.float32)
    for i, low in enumerate(LOWS):
        bodies, count = ndimage.label(probs > low, structure=IN_PLANE)
        peaks = np.asarray(ndimage.maximum(probs, bodies, np.arange(1, count + 1)))
        for j, gap in enumerate(GAPS):
            keep = np.concatenate([[False], peaks > low + gap])
            masks = keep[bodies].astype(np.float32)
            table[:, i, j] = threshold_area_table(truth, masks, [0.5], MIN_AREAS)[:, 0]
    return table


def best_rule(table: np.ndarray, images: np.ndarray) -> tuple[tuple, float]:
    """The (low, gap, min_area) index with the best mean score on `images`, and that mean."""
    means = table[images].mean(axis=0)
    index = np.unravel_index(int(np.argmax(means)), means.shape)
    return index, float(means[index])


def describe(table: np.ndarray) -> dict:
    """The best rule on all images: its score, low and high thresholds and min area."""
    (i, j, a), score = best_rule(table, np.arange(len(table)))
    low = float(LOWS[i])
    return {
        "score": round(score, 4),
        "low": low,
        "high": round(low + GAPS[j], 2),
        "min_area": int(MIN_AREAS[a]),
    }


def halves_gain(table: np.ndarray, splits: int = 20) -> tuple[float, float]:
    """Hysteresis's gain over one threshold on held-out halves: mean and std over splits."""
    rng = np.random.default_rng(0)
    single = table[:, :, :1]
    gains = []
    for _ in range(splits):
        order = rng.permutation(len(table))
        tune, held = order[: len(order) // 2], order[len(order) // 2 :]
        (i, j, a), _ = best_rule(table, tune)
        (k, _, b), _ = best_rule(single, tune)
        gains.append(table[held, i, j, a].mean() - single[held, k, 0, b].mean())
    return float(np.mean(gains)), float(np.std(gains))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs="+", required=True, help="base runs, e.g. best64-wide-1")
    parser.add_argument("--data-folder", type=Path, default=Path("data"))
    parser.add_argument("--outputs-folder", type=Path, default=Path("outputs"))
    args = parser.parse_args(argv)
    if len(args.run) > 1:
        members = load_members(args.outputs_folder, args.run)
    else:
        members = [load_member(args.outputs_folder, args.run[0])]
    ids, probs = load_oof_probs(members)
    mean = blend(probs, np.full(len(probs), 1 / len(probs))).astype(np.float32, copy=False)
    table = hysteresis_tables(truth_masks(resolve_data_folder(args.data_folder), ids), mean)
    gain, spread = halves_gain(table)
    report = {"runs": args.run, "images": len(ids)}
    report.update(one_threshold=describe(table[:, :, :1]), hysteresis=describe(table))
    report["halves_gain"] = {"mean": round(gain, 4), "std": round(spread, 4)}
    print(json.dumps(report))


if __name__ == "__main__":
    run_cli(main)
