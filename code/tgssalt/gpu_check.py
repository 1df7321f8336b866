"""Is the GPU used, and how fast does the toolkit run on it: what `code/gpu_check.py` runs.

1. The environment (`gpu_env.py`): backend, devices, precision, versions; a JAX backend that
   sees only a CPU is refused unless `allow_cpu` (any backend without a GPU with `require_gpu`).
2. Speed (`benchmark.run_benchmark`, as `benchmark.py` times it): training and flip-TTA
   prediction img/s after a warm-up, per config x batch size x precision; the same model in
   segmentation_models_pytorch alongside when torch and smp are installed and the model has an
   smp equivalent (the from-scratch U-Net has none). Default: the ResNet34 U-Net at 128 px and
   the from-scratch U-Net (`unet-resnet.json`) at their configs' batch, fp32 and bf16.
3. Optionally one fold trained end to end and N images predicted x the folds
   (`gpu_workloads.py`).

`quick` shrinks everything (32 px, a 4-filter depth-2 U-Net only, 2 steps of 2 images, one
repeat; 1 + 1 epochs and 2 folds on 32 synthetic images) so that it runs on a CPU in about a
minute; its numbers say that the stack works, not how fast it is.
"""

import contextlib
import importlib.util
import tempfile
import time
from pathlib import Path

import keras

from .benchmark import import_smp, run_benchmark, smp_names
from .config import Config, load_config, override
from .errors import UserError
from .gpu_env import check_accelerator, inspect_environment
from .paths import CONFIG_FOLDER

# (config file, input size to time it at: None keeps the config's)
DEFAULT_SPEED = (("unet-pretrained-encoder-resnet34.json", 128), ("unet-resnet.json", None))
QUICK_SPEED = (("unet-resnet.json", None),)
FOLD_CONFIG = CONFIG_FOLDER / "unet-resnet.json"
QUICK_INPUT = {"input": {"size": 32}}
QUICK_MODEL = {"model": {"start_filters": 4, "depth": 2}}  # from-scratch configs only
QUICK_FOLD = {"stage1": {"epochs": 1}, "stage2": {"epochs": 1}, "crossvalidation": {"folds": 2}}
QUICK_SHAPE = {"batch": 2, "predict_batch": 4, "steps": 2, "repeats": 1}
FULL_SHAPE = {"steps": 20, "repeats": 3}  # batch: the config's; predict batch: see shape_for
SYNTHETIC = {"quick": (32, 8), "full": (1000, 200)}  # (train, test) images for --train-fold


def quick_config(config: Config, fold: bool = False) -> Config:
    """The config shrunk for `--quick` (the model only when it is the from-scratch U-Net)."""
    config = override(config, QUICK_INPUT)
    if not config.encoder:
        config = override(config, QUICK_MODEL)
    return override(config, QUICK_FOLD) if fold else config


def speed_configs(args) -> list[tuple[str, dict]]:
    """(file name, config) to time, sized as asked; loading (and failing) before anything runs."""
    if args.config_file:
        chosen = [(Path(path), args.size) for path in args.config_file]
    else:
        chosen = [
            (CONFIG_FOLDER / name, size)
            for name, size in (QUICK_SPEED if args.quick else DEFAULT_SPEED)
        ]
    out = []
    for path, size in chosen:
        config = load_config(path)
        config = quick_config(config) if args.quick else config
        if size:
            config = override(config, {"input": {"size": size}})
        out.append((path.name, config))
    return out


def smp_peer(config: Config, wanted: bool) -> tuple[str | None, str]:
    """("smp" or None, why): the peer runs when wanted, installed and equivalent to the model."""
    if not wanted:
        return None, "not asked (--no-smp)"
    try:
        smp_names(config)
    except UserError:
        return None, "no smp equivalent of this model"
    if not all(importlib.util.find_spec(m) for m in ("torch", "segmentation_models_pytorch")):
        return None, "torch/smp not installed (pip install -r requirements-bench.txt)"
    try:
        import_smp()
    except UserError as exc:
        return None, str(exc)
    return "smp", "smp (eager PyTorch)"


def time_speed(args, configs: list[tuple[str, dict]]) -> tuple[list[dict], dict]:
    """One row per config x batch x precision, and the conditions they share."""
    rows, shared = [], {}
    for name, config in configs:
        peer, note = smp_peer(config, args.smp)
        default_batch = QUICK_SHAPE["batch"] if args.quick else config.stage1.batch_size
        for batch in args.batch_sizes or [default_batch]:
            shape = shape_for(args, config, batch)
            for precision in args.precisions:
                summary = run_benchmark(
                    config,
                    {
                        **shape,
                        "precision": precision,
                        "peer": peer,
                        "pipeline": False,
                        "pipeline_images": 0,
                    },
                )
                rows.append(speed_row(name, summary, note))
                shared = {k: summary[k] for k in ("steps", "repeats", "tta", "threads")}
        keras.mixed_precision.set_dtype_policy("float32")
    return rows, shared


def shape_for(args, config: Config, batch: int) -> dict:
    """batch, predict_batch, steps and repeats of one timed case: the options given, else
    `QUICK_SHAPE` with `--quick`, else `FULL_SHAPE` and a predict batch of the larger of the
    config's and the training batch (a large training batch predicts in batches as large)."""
    base = QUICK_SHAPE if args.quick else FULL_SHAPE
    predict_batch = base.get("predict_batch", max(config.predict.batch_size, batch))
    return {
        "batch": batch,
        "predict_batch": args.predict_batch_size or predict_batch,
        "steps": args.steps or base["steps"],
        "repeats": args.repeats or base["repeats"],
    }


def speed_row(config_name: str, summary: dict, smp_note: str) -> dict:
    """The numbers of one timed case, as the JSON line's `speed` list holds them."""
    keys = ("model", "size", "channels", "batch", "predict_batch", "precision")
    row = {"config": config_name, **{k: summary[k] for k in keys}}
    row.update(
        {
            k: v
            for k, v in summary.items()
            if k.endswith(("img_s", "img_s_best", "ratio", "ratio_best"))
        }
    )
    return {**row, "smp": smp_note}


def run_gpu_check(args) -> dict:
    """Check, time and (optionally) train and predict as `args` asks; return the JSON summary.

    Every config is loaded (and a bad one refused) before anything slow; the environment lines
    are printed as soon as they are known."""
    from .gpu_report import format_environment

    configs = speed_configs(args) if args.speed else []
    fold_config = workload_config(args) if args.train_fold or args.predict else None
    env = inspect_environment()
    check_accelerator(env, args.allow_cpu, args.require_gpu)
    print(format_environment(env, args.precisions if configs else []), flush=True)
    started = time.perf_counter()
    summary = {**env, "quick": args.quick}
    if configs:
        summary["speed"], shared = time_speed(args, configs)
        summary.update(shared)
    with contextlib.ExitStack() as stack:
        model_path = None
        if args.train_fold:
            outputs = args.outputs_folder or Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-check-"))
            )
            summary["fold"] = train_timed_fold(args, fold_config, outputs)
            model_path = summary["fold"]["model"]
        if args.predict:
            from .gpu_workloads import prediction_speed

            summary["predict"] = prediction_speed(fold_config, args.predict, model_path)
    summary["seconds"] = time.perf_counter() - started
    return summary


def workload_config(args) -> dict:
    """The config of `--train-fold` and `--predict` (shrunk with `--quick`), `--fold` checked."""
    config = load_config(args.fold_config or FOLD_CONFIG)
    if args.quick:
        config = quick_config(config, fold=True)
    folds = config.crossvalidation.folds
    fold = args.fold or 0
    if args.train_fold and not 0 <= fold < folds:
        quick = " with --quick" if args.quick else ""
        raise UserError(f"--fold {fold} is out of range: {folds} folds{quick} (0 to {folds - 1})")
    return config


def train_timed_fold(args, config: Config, outputs: Path) -> dict:
    """`train_one_fold` on `--data-folder`, or on synthetic images when none is given."""
    from .gpu_workloads import train_one_fold

    synthetic = SYNTHETIC["quick" if args.quick else "full"]
    return train_one_fold(config, args.fold or 0, args.data_folder, outputs, synthetic)
