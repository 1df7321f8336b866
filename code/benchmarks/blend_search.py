"""What the blend's weight search costs: time it on a data set's masks with made-up members.

    python code/benchmarks/blend_search.py --data-folder DATA --members 2
    python code/benchmarks/blend_search.py --data-folder DATA --members 3

Each member's out-of-fold probabilities are the true masks blurred with noise, and unsure (0.3
everywhere) on a random 15% of the salt images of its own: members wrong on different images, as
in `code/tests/test_blend.py`, but at full size. Prints the number of candidate weight vectors, the
search time and the scores (each member alone, equal weights, tuned weights, cross-checks) as JSON.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tgssalt.blend import choose, search_weights  # noqa: E402
from tgssalt.data import (  # noqa: E402
    read_ids,
    resolve_data_folder,
    truth_masks,  # noqa: E402
)
from tgssalt.metrics import DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS  # noqa: E402


def member(truth: np.ndarray, seed: int) -> np.ndarray:
    """Probabilities near `truth`, unsure on a random 15% of its salt images."""
    rng = np.random.default_rng(seed)
    probs = 0.2 + 0.6 * truth + rng.normal(0, 0.15, truth.shape)
    salty = np.flatnonzero(truth.reshape(len(truth), -1).any(axis=1))
    probs[rng.choice(salty, int(0.15 * len(salty)), replace=False)] = 0.3
    return np.clip(probs, 0, 1).astype(np.float16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-folder", type=Path, default=Path("data"))
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--weight-step", type=float, default=0.1)
    args = parser.parse_args()
    folder = resolve_data_folder(args.data_folder)
    truth = truth_masks(folder, np.sort(read_ids(folder / "train.csv")))
    probs = [member(truth, seed) for seed in range(args.members)]
    start = time.perf_counter()
    search = search_weights(
        truth, probs, "auto", args.weight_step, DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS
    )
    seconds = time.perf_counter() - start
    summary = choose(search, "auto")
    alone = [search.best([search.index(np.eye(args.members)[m])])[3] for m in range(args.members)]
    report = {"images": len(truth), "candidates": len(search.candidates)}
    report.update(seconds=round(seconds, 1), members_alone=alone, **summary)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
