"""Salt masks for a folder of images, with trained models: what `predict.py` runs.

Models are `.keras` files, or a run name whose fold models are found in the outputs folder
(`models/<run>-cvfold<k>-stage2.keras`, else that fold's `-stage1.keras`; `layout.py` names them),
or a blend run (`<a>+<b>-blend`, `ensemble.py` with several runs) whose members' fold models are
found so. Their probabilities are averaged (with flip TTA; for a blend weighted by its members'
weights), then binarised with the run's ensemble rule: threshold, hysteresis peak if kept, and
min_area (`models/<run>-ensemble.json`, or the blend's `models/<blend>.json`), else with the mean
of the folds' own thresholds. Images of any size are resized to 101x101, the size the models were
trained at, and each mask back to its image's size. Writes one mask PNG (0/255) per image and a
CSV of their run-length encodings, each file atomically.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage.transform import resize

from .atomic import atomic_path
from .competition import DEFAULT_THRESHOLD, IMAGE_SIZE
from .config import Config, resolve_config
from .data import read_png
from .errors import UserError, first_line
from .layout import STAGE_NAMES, Outputs, RunOutputs, any_fold_run, is_blend_run
from .metrics import binarize
from .rle import rle_encode
from .splits import split_folds
from .submission import write_submission

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class Postprocessing:
    """How probabilities become masks, and where those numbers came from (said once)."""

    threshold: float
    min_area: int
    source: str
    peak: float | None = None  # hysteresis's peak threshold, when the ensemble kept it


def find_images(folder: Path) -> tuple[list[str], list[Path]]:
    """Ids (file stems) and paths of the images in `folder`, sorted; ids must be unique."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    ids = [p.stem for p in paths]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise UserError(f"{folder}: several images share a name, e.g. {dup[0]!r}")
    return ids, paths


def image_sizes(paths: list[Path]) -> list[tuple[int, int]]:
    """(height, width) of each image from its header: every file is checked before predicting."""
    sizes = []
    for path in paths:
        try:
            with Image.open(path) as img:
                sizes.append((img.height, img.width))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(f"{path}: cannot read image ({exc})") from None
    return sizes


def resolve_model_paths(specs: list[str], outputs_folder: Path) -> list[Path]:
    """The `.keras` files named by `specs`: each a `.keras` path or a run name."""
    return resolve_models(specs, outputs_folder)[0]


def resolve_models(specs: list[str], outputs_folder: Path) -> tuple[list[Path], list[float]]:
    """The `.keras` files named by `specs` and each one's weight in the mean of their
    probabilities: equal, except for a blend run, whose members' weights are shared out among
    their fold models as the blend did. A blend must come alone."""
    outputs, paths, weights = Outputs(Path(outputs_folder)), [], []
    blends = [spec for spec in specs if is_blend_run(spec)]
    if blends and len(specs) > 1:
        raise UserError(f"{blends[0]}: a blend run must be the only --models (its own mean)")
    for spec in specs:
        if spec.endswith(".keras"):
            if not Path(spec).is_file():
                raise UserError(f"{spec}: model file not found")
            found = [(Path(spec), 1.0)]
        elif is_blend_run(spec):
            found = blend_models(spec, outputs)
        else:
            found = [(path, 1.0) for path in run_models(spec, outputs)]
        paths.extend(path for path, _ in found)
        weights.extend(weight for _, weight in found)
    return paths, [weight / sum(weights) for weight in weights]


def blend_models(run: str, outputs: Outputs) -> list[tuple[Path, float]]:
    """The fold models of blend `run`'s members (its JSON, `ensemble.py` with several runs),
    each with its member's weight over its member's model count; members of weight 0 left out."""
    path = outputs.blend(run).summary
    summary = _read_json(path)
    if summary is None:
        raise UserError(f"{path}: missing; blend the runs first (code/ensemble.py --run A B)")
    found = []
    for member, weight in zip(summary["members"], summary["weights"], strict=True):
        models = run_models(member["run"], outputs) if weight > 0 else []
        found.extend((model, weight / len(models)) for model in models)
    return found


def run_models(run: str, outputs: Outputs) -> list[Path]:
    """A run's fold models, stage 2 where present, else stage 1; or the run's own model when
    `run` is a single split or a single fold (`<name>-cvfold<k>`)."""
    runs = outputs.fold_models(run) or [outputs.run(run)]
    _warn_missing_folds(outputs, run, runs)
    found = [r.latest_model() for r in runs]
    if None in found:
        last, first = STAGE_NAMES[-1], STAGE_NAMES[0]
        folds, single = outputs.run(any_fold_run(run)), outputs.run(run)
        raise UserError(
            f"{single.model(last).parent}: no model {folds.model(last).name} (or {first}), nor "
            f"{single.model(last).name}; give .keras files or a run name trained in this "
            "outputs folder"
        )
    return found


def _warn_missing_folds(outputs: Outputs, base: str, runs: list[RunOutputs]) -> None:
    """Say when the run's split file names folds that have no model (still training?)."""
    split_file = outputs.split_file(base)
    if runs[0].fold is None or not split_file.is_file():
        return
    missing = sorted(set(split_folds(split_file)) - {r.fold for r in runs})
    if missing:
        print(
            f"warning: fold(s) {', '.join(map(str, missing))} of {base} ({split_file}) have no "
            "model: predicting with the others",
            file=sys.stderr,
        )


def _read_json(path: Path) -> dict | None:
    """A JSON file's content, None when absent; a UserError when unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc})") from None


def postprocessing(
    specs: list[str], model_paths: list[Path], outputs_folder: Path
) -> Postprocessing:
    """The threshold and min_area: a single run's ensemble JSON (or a blend's JSON), else the
    mean of the models' own thresholds (their runs' metrics JSON) with no min-area rule, else
    0.5."""
    if len(specs) == 1 and not specs[0].endswith(".keras"):
        outputs = Outputs(Path(outputs_folder))
        blend = is_blend_run(specs[0])
        path = (outputs.blend if blend else outputs.ensemble)(specs[0]).summary
        summary = _read_json(path)
        if summary is not None:
            rule = float(summary["threshold"]), int(summary["min_area"]), str(path)
            return Postprocessing(*rule, summary.get("peak_threshold"))
    thresholds = []
    for model in model_paths:
        metrics = _read_json(RunOutputs.of_model(model).metrics)
        if metrics is not None:
            thresholds.append(float(metrics["threshold"]))
    if not thresholds:
        return Postprocessing(
            DEFAULT_THRESHOLD, 0, "the default (no metrics JSON beside the models)"
        )
    source = f"the mean of {len(thresholds)} model(s)' validation thresholds"
    return Postprocessing(float(np.mean(thresholds)), 0, source)


def predict_config(model_path: Path, input_shape: tuple, tta: bool, batch_size: int) -> Config:
    """The prediction settings of a model: its run's saved config where present (normalisation),
    the model's own input shape, and this command's TTA and batch size."""
    saved = _read_json(RunOutputs.of_model(model_path).config) or {}
    shape = dict(saved.get("input", {}))
    size, channels = input_shape[1], input_shape[-1]
    if isinstance(size, int):
        shape["size"] = size
    if isinstance(channels, int):
        shape["channels"] = channels
    user = {"input": shape, "tta": {"hflip": tta}, "predict": {"batch_size": batch_size}}
    return resolve_config(user)


def load_models(paths: list[Path], tta: bool, batch_size: int) -> list[tuple]:
    """(model, prediction config) per file. The files hold probability models (`fold_training`
    them with their sigmoid), so they are only compiled for prediction here."""
    import keras

    from .device import jit_compile_setting
    from .models import layers  # noqa: F401  registers the custom layers some models hold

    models = []
    for path in paths:
        try:
            model = keras.saving.load_model(path, compile=False)
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: cannot load model ({first_line(exc)})") from None
        model.compile(jit_compile=jit_compile_setting())
        models.append((model, predict_config(path, model.input_shape, tta, batch_size)))
    return models


def read_resized(paths: list[Path]) -> np.ndarray:
    """Images as (N, 101, 101, 1) float32 grey values 0..255, resized where needed."""
    out = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
    for k, path in enumerate(paths):
        image = read_png(path, 1).astype(np.float32)
        if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            image = resize(image, (IMAGE_SIZE, IMAGE_SIZE, 1), order=1, preserve_range=True)
        out[k] = image
    return out


def mean_probs(models: list[tuple], images: np.ndarray, weights=None) -> np.ndarray:
    """The models' mean salt probabilities (N, 101, 101) for (N, 101, 101, 1) images, weighted
    by `weights` (summing to 1) when given."""
    from .inference import predict_probs

    weights = [1 / len(models)] * len(models) if weights is None else weights
    total = np.zeros(images.shape[:3], np.float32)
    for (model, config), weight in zip(models, weights, strict=True):
        channels = config.input.channels
        total += weight * predict_probs(model, np.repeat(images, channels, axis=-1), config)
    return total


def to_masks(probs: np.ndarray, sizes: list, post: Postprocessing) -> list[np.ndarray]:
    """Binary masks at each image's own size. The min-area rule is decided at 101x101, the scale
    it was tuned at; a kept mask is then thresholded from its probabilities resized back."""
    kept = binarize(probs, post.threshold, post.min_area, post.peak)
    masks = []
    for mask, prob, size in zip(kept, probs, sizes, strict=True):
        if size != (IMAGE_SIZE, IMAGE_SIZE) and mask.any():
            prob = resize(prob, size, order=1, preserve_range=True)
            mask = binarize(prob[None], post.threshold, 0, post.peak)[0]
        elif size != (IMAGE_SIZE, IMAGE_SIZE):
            mask = np.zeros(size, np.uint8)
        masks.append(mask)
    return masks


def write_mask(path: Path, mask: np.ndarray) -> None:
    """A mask as an 8-bit PNG, 0 or 255, written atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(mask.astype(np.uint8) * np.uint8(255)).save(tmp)


def write_csv(path: Path, ids: list[str], rles: list[str], sizes: list) -> None:
    """The masks' RLEs: a valid Kaggle submission when every image is 101x101, else with each
    image's `height` and `width` (the RLE numbers pixels of that size)."""
    if all(size == (IMAGE_SIZE, IMAGE_SIZE) for size in sizes):
        write_submission(path, ids, rles)
        return
    frame = pd.DataFrame(
        {
            "id": ids,
            "rle_mask": rles,
            "height": [s[0] for s in sizes],
            "width": [s[1] for s in sizes],
        }
    )
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def predict_images(
    specs: list[str],
    image_folder: Path,
    mask_folder: Path,
    outputs_folder: Path,
    csv_path: Path | None = None,
    options: dict | None = None,
) -> Path:
    """Predict every image in `image_folder`; write masks to `mask_folder` and the RLE CSV;
    `outputs_folder` is where run names are looked up.

    `options`: `threshold` and `min_area` (override the run's), `tta` (default True),
    `batch_size` (64), `chunk` (images per step, 256). Returns the CSV's path.
    """
    options = {"tta": True, "batch_size": 64, "chunk": 256, **(options or {})}
    image_folder, mask_folder = Path(image_folder), Path(mask_folder)
    if mask_folder.resolve() == image_folder.resolve():
        raise UserError(f"{mask_folder}: the output folder must not be the image folder")
    csv_path = Path(csv_path) if csv_path else mask_folder / "masks.csv"
    ids, paths = find_images(image_folder)
    sizes = image_sizes(paths)
    model_paths, weights = resolve_models(specs, outputs_folder)
    post = _override(postprocessing(specs, model_paths, outputs_folder), options)
    _announce(len(model_paths), post, sizes)
    models = load_models(model_paths, options["tta"], options["batch_size"])
    options["weights"] = weights
    rles = _predict_all(models, ids, paths, sizes, post, mask_folder, options)
    write_csv(csv_path, ids, rles, sizes)
    print(f"wrote {len(ids)} masks to {mask_folder} and their RLEs to {csv_path}")
    return csv_path


def _override(post: Postprocessing, options: dict) -> Postprocessing:
    """Command-line threshold and min_area win over the run's; a new threshold drops the
    run's hysteresis peak, which was tuned with the run's threshold."""
    if options.get("threshold") is None and options.get("min_area") is None:
        return post
    threshold = post.threshold if options.get("threshold") is None else options["threshold"]
    min_area = post.min_area if options.get("min_area") is None else options["min_area"]
    if not 0 < threshold < 1 or min_area < 0:
        raise UserError("--threshold must be in (0, 1) and --min-area >= 0")
    peak = post.peak if options.get("threshold") is None else None
    return Postprocessing(float(threshold), int(min_area), "the command line", peak)


def _announce(n_models: int, post: Postprocessing, sizes: list) -> None:
    """Say once what is used, and that images not 101x101 are resized both ways."""
    peak = "" if post.peak is None else f", hysteresis peak {post.peak:.3f}"
    print(
        f"{n_models} model(s); threshold {post.threshold:.3f}{peak}, min_area {post.min_area} "
        f"from {post.source}"
    )
    other = sum(size != (IMAGE_SIZE, IMAGE_SIZE) for size in sizes)
    if other:
        print(
            f"note: {other} of {len(sizes)} images are not {IMAGE_SIZE}x{IMAGE_SIZE}: each is "
            f"resized to {IMAGE_SIZE}x{IMAGE_SIZE} for the models and its mask back to its size",
            file=sys.stderr,
        )


def _predict_all(models, ids, paths, sizes, post, mask_folder: Path, options: dict) -> list[str]:
    """Predict `options["chunk"]` images at a time with a progress bar, the models' probabilities
    weighted by `options["weights"]`; write each mask; return the RLEs in order."""
    from tqdm import tqdm

    rles, chunk = [], options["chunk"]
    with tqdm(total=len(ids), unit="img", desc="predict", disable=None) as bar:
        for start in range(0, len(ids), chunk):
            part = slice(start, start + chunk)
            probs = mean_probs(models, read_resized(paths[part]), options["weights"])
            for image_id, mask in zip(ids[part], to_masks(probs, sizes[part], post), strict=True):
                write_mask(mask_folder / f"{image_id}.png", mask)
                rles.append(rle_encode(mask))
            bar.update(len(probs))
    return rles
