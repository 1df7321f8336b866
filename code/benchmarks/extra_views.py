"""Do more test-time views or the stage-1 model add to trained folds? Rescored out of fold.

    python code/benchmarks/extra_views.py --run RUN [RUN ...] --data-folder DATA \
        [--outputs-folder OUT] [--shift 2]

For each run (`<base>`, as `ensemble.py --run` takes it) and each of its trained folds, it
re-predicts the fold's validation images three ways, with the models as exported now (heads
averaged over flips and snapshots, then gated once: `inference.predict_probs`):

- `export`: the stage-2 model with flip TTA, what the fold saved (checked to match);
- `shift`: the same, also at the input moved by `--shift` px up, down, left and right (reflect
  padding at the model's size, the output moved back): 10 forward passes instead of 2;
- `stage1`: the stage-1 model (BCE) with flip TTA, and `stage1+2`, its average with `export`.

Each view, and with several runs their equal-weight blend, gets the ensemble's rule out of fold
(`postprocess.tune_rule`: threshold, min area and hysteresis). Prints one JSON line.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from empty_head import packed_members  # noqa: E402
from tgssalt.config import load_config  # noqa: E402
from tgssalt.data import resolve_data_folder, train_images, truth_masks  # noqa: E402
from tgssalt.ensemble import find_folds  # noqa: E402
from tgssalt.inference import compile_for_prediction, gate  # noqa: E402
from tgssalt.layout import Outputs  # noqa: E402
from tgssalt.metrics import DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS  # noqa: E402
from tgssalt.models.layers import SaltHeadProbabilities  # noqa: E402
from tgssalt.pipeline import preprocess  # noqa: E402
from tgssalt.postprocess import tune_rule  # noqa: E402
from tgssalt.predictions import load_predictions  # noqa: E402
from tgssalt.sizes import to_original_size  # noqa: E402


def current_export(path: Path) -> keras.Model:
    """The saved stage model as the current export: every member's mask and head probabilities,
    averaged (older exports gated each member; this rebuilds them the current way)."""
    saved = keras.saving.load_model(path, compile=False)
    inputs = keras.Input(saved.input.shape[1:])
    members = [SaltHeadProbabilities(dtype="float32")(m(inputs)) for m in packed_members(saved)]
    if not members:  # no empty-mask head: the saved sigmoid model is already the export
        return compile_for_prediction(saved)
    probs = members[0] if len(members) == 1 else keras.layers.Average(dtype="float32")(members)
    return compile_for_prediction(keras.Model(inputs, probs))


def moved(model: keras.Model, x: np.ndarray, dy: int, dx: int, margin: int) -> np.ndarray:
    """The model's output for x moved by (dy, dx) px (reflect padding), moved back (the edge
    rows and columns it lacks repeated from the nearest predicted ones)."""
    _, h, w, _ = x.shape
    pad = ((0, 0), (margin, margin), (margin, margin), (0, 0))
    top, left = margin + dy, margin + dx
    view = np.pad(x, pad, mode="reflect")[:, top : top + h, left : left + w]
    out = np.asarray(model.predict(view, batch_size=64, verbose=0), np.float32)
    back = np.pad(out, pad, mode="edge")
    return back[:, margin - dy : margin - dy + h, margin - dx : margin - dx + w]


def flip_sum(model: keras.Model, x: np.ndarray, offsets, margin: int) -> np.ndarray:
    """The model's outputs for preprocessed x summed over `offsets` and their horizontal flips
    (2 passes per offset), each moved back; not yet averaged or gated."""
    total = np.zeros((), np.float32)
    for dy, dx in offsets:
        total = total + moved(model, x, dy, dx, margin)
        total = total + moved(model, x[:, :, ::-1], dy, dx, margin)[:, :, ::-1]
    return total


def to_probs(total: np.ndarray, passes: int, config) -> np.ndarray:
    """Probabilities at 101 px from a sum of `passes` outputs: averaged, then gated once."""
    return to_original_size(gate(total / passes), config.input)


def fold_views(outputs: Outputs, fold, data: Path, shift: int) -> dict[str, np.ndarray]:
    """One fold's validation ids and its probabilities under each view (the shift view reuses
    the export's two unmoved passes)."""
    ids, saved, _ = load_predictions(fold.valid)
    run = outputs.run(fold.run)
    config = load_config(run.config)
    x = preprocess(train_images(data, ids, config.input.channels), config)
    stage2 = current_export(run.model("stage2"))
    still = flip_sum(stage2, x, [(0, 0)], shift)
    moves = flip_sum(stage2, x, [(shift, 0), (-shift, 0), (0, shift), (0, -shift)], shift)
    stage1 = flip_sum(current_export(run.model("stage1")), x, [(0, 0)], shift)
    views = {
        "export": to_probs(still, 2, config),
        "shift": to_probs(still + moves, 10, config),
        "stage1": to_probs(stage1, 2, config),
    }
    error = float(np.abs(views["export"] - saved.astype(np.float32)).max())
    if error > 2e-3:
        raise SystemExit(f"{fold.run}: re-predicted probabilities differ from the saved ({error})")
    views["stage1+2"] = 0.5 * (views["stage1"] + views["export"])
    return {"ids": ids, **views}


def run_views(outputs_folder: Path, run: str, data: Path, shift: int) -> dict[str, np.ndarray]:
    """Every trained fold's views of `run`, concatenated and sorted by image id."""
    outputs = Outputs(outputs_folder)
    parts = [fold_views(outputs, fold, data, shift) for fold in find_folds(outputs_folder, run)]
    views = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    order = np.argsort(views["ids"])
    return {key: value[order] for key, value in views.items()}


def scored(truth: np.ndarray, probs: np.ndarray) -> dict:
    """The ensemble's out-of-fold rule for these probabilities, rounded."""
    rule, _ = tune_rule(truth, probs, DEFAULT_SEARCH_THRESHOLDS, MIN_AREAS)
    keys = ("oof_score_one_threshold", "oof_score", "threshold", "peak_threshold", "min_area")
    return {key: round(rule[key], 4) if isinstance(rule[key], float) else rule[key] for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs="+", required=True)
    parser.add_argument("--data-folder", type=Path, default=Path("data"))
    parser.add_argument("--outputs-folder", type=Path, default=Path("outputs"))
    parser.add_argument("--shift", type=int, default=2, help="px at the model's input size")
    args = parser.parse_args()
    data = resolve_data_folder(args.data_folder)
    runs = {run: run_views(args.outputs_folder, run, data, args.shift) for run in args.run}
    ids = next(iter(runs.values()))["ids"]
    if any(not np.array_equal(views["ids"], ids) for views in runs.values()):
        raise SystemExit("the runs' folds do not cover the same validation images")
    truth = truth_masks(data, ids)
    names = ("export", "shift", "stage1", "stage1+2")
    report = {run: {name: scored(truth, v[name]) for name in names} for run, v in runs.items()}
    if len(runs) > 1:
        blend = {name: np.mean([v[name] for v in runs.values()], axis=0) for name in names}
        report["blend"] = {name: scored(truth, probs) for name, probs in blend.items()}
    print(json.dumps({"images": len(ids), "shift": args.shift, **report}))


if __name__ == "__main__":
    main()
