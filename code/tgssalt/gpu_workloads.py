"""The end-to-end parts of `code/gpu_check.py`: one fold trained, N images predicted x folds.

`train_one_fold` runs `fold.train_fold` as `train_fold.py` does (from scratch), on a data
folder or on synthetic data written to a temporary folder, and reports its wall minutes with
the fold's own metrics (validation score, stage img/s). `prediction_speed` predicts N random
101 px images (their content does not change the speed) with every fold's model, chunk by chunk
with flip TTA and the probabilities averaged, as `predict.py` does (`predict_images.mean_probs`).

GPU machines may lack MLflow (`tracking.py` logs every fold to it): `ensure_tracking` then puts
in a stand-in that records nothing, so the fold's metrics JSON is its only record.
"""

import contextlib
import importlib.util
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from .competition import IMAGE_SIZE
from .config import Config
from .fold_training import train_fold
from .inference import probability_model
from .layout import base_run, fold_run
from .models import build_model
from .predict_images import load_models, mean_probs, resolve_model_paths
from .synthetic import generate_dataset

# Images predicted per step: what `fold.predict_test` gives `inference.predict_folder`.
PREDICT_CHUNK = 1000
FOLD_METRICS = (
    "validation_score",
    "threshold",
    "validation_images",
    "stage1_epochs",
    "stage1_seconds",
    "stage1_train_images_per_second",
    "stage2_epochs",
    "stage2_seconds",
    "stage2_train_images_per_second",
    "test_images",
    "test_predict_images_per_second",
)


def ensure_tracking() -> str:
    """'mlflow' when MLflow is installed; else a note, after a no-op `mlflow` is put in."""
    if importlib.util.find_spec("mlflow") is not None:
        return "mlflow"
    sys.modules["mlflow"] = untracked_mlflow()
    return "none: mlflow is not installed, the fold's metrics JSON is its only record"


def untracked_mlflow() -> types.ModuleType:
    """A module with the `mlflow` functions `tracking.py` calls, each doing nothing."""
    stub = types.ModuleType("mlflow")
    for name in (
        "set_tracking_uri",
        "create_experiment",
        "set_experiment",
        "log_params",
        "log_metrics",
        "log_metric",
        "log_artifact",
    ):
        setattr(stub, name, lambda *args, **kwargs: None)
    stub.get_experiment_by_name = lambda name: name  # "exists": nothing to create
    run = types.SimpleNamespace(
        info=types.SimpleNamespace(run_id="untracked"), data=types.SimpleNamespace(params={})
    )
    stub.start_run = lambda *args, **kwargs: contextlib.nullcontext(run)
    stub.get_run = lambda run_id: run
    return stub


def train_one_fold(
    config: Config, fold: int, data_folder: Path | None, outputs_folder: Path, synthetic: tuple
) -> dict:
    """Train `fold` from scratch; `synthetic` (train, test) images when `data_folder` is None."""
    with contextlib.ExitStack() as stack:
        data = f"{data_folder}"
        if data_folder is None:
            data_folder = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "data"
            generate_dataset(data_folder, *synthetic, seed=config.seed)
            data = f"synthetic: {synthetic[0]} train / {synthetic[1]} test images"
        tracking = ensure_tracking()
        started = time.perf_counter()
        metrics = train_fold(config, fold, data_folder, outputs_folder, restart=True)
        minutes = (time.perf_counter() - started) / 60
    run = fold_run(base_run(config), fold)
    model = resolve_model_paths([run], outputs_folder)[0]
    found = {key: metrics[key] for key in FOLD_METRICS if key in metrics}
    return {
        "run": run,
        "model": str(model),
        "data": data,
        "tracking": tracking,
        "minutes": minutes,
        **found,
    }


def prediction_speed(config: Config, n_images: int, model_path: Path | None = None) -> dict:
    """Predict `n_images` x the config's folds with its TTA: minutes and img/s.

    The fold models are `model_path` (a fold's exported model, loaded once per fold as
    `predict.py` loads a run's models) when given, else models built with random weights.
    `img_s` counts an image once per fold model; `test_img_s` once.
    """
    folds = config.crossvalidation.folds
    images = np.random.default_rng(0).integers(
        0, 256, (n_images, IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8
    )
    started = time.perf_counter()
    models, source = _fold_models(config, folds, model_path)
    loaded = time.perf_counter()
    for start in range(0, n_images, PREDICT_CHUNK):
        mean_probs(models, images[start : start + PREDICT_CHUNK].astype(np.float32))
    seconds = time.perf_counter() - loaded
    return {
        "images": n_images,
        "folds": folds,
        "tta": "hflip" if config.tta.hflip else "none",
        "models": source,
        "load_seconds": loaded - started,
        "predict_seconds": seconds,
        "minutes": (time.perf_counter() - started) / 60,
        "img_s": n_images * folds / seconds,
        "test_img_s": n_images / seconds,
    }


def _fold_models(config: Config, folds: int, model_path: Path | None) -> tuple[list, str]:
    """[(probability model, its prediction config)] x folds, and where they came from."""
    if model_path is not None:
        tta, batch = config.tta.hflip, config.predict.batch_size
        models = load_models([Path(model_path)] * folds, tta, batch)
        return models, f"{Path(model_path).name}, loaded {folds} times"
    models = [(probability_model(build_model(config)), config) for _ in range(folds)]
    return models, f"{folds} models built with random weights"
