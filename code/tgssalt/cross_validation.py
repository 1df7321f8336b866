"""Every cross-validation fold of a config, then their ensemble, and the blend of several
configs' runs: what `run_folds.py` runs.

A fold is complete when its metrics JSON and test predictions exist (`fold_training.train_fold`
writes them last), so an interrupted run trains only the missing folds, each resuming from its
last complete epoch. With one job the folds train one after another in this process; with
several (`--jobs`; by default one per GPU when several are visible) each fold runs as a
`train_fold.py` child process in a slot of `fold_pool`, a GPU or a share of the CPU cores, its
output in `logs/<run>.log`, the missing folds of every config of a recipe in one pool. The first
fold to start writes the config's split file (`splits.py`), which every other fold reads. The
ensembles run once every fold is complete.
"""

import os
import shutil
import subprocess
from pathlib import Path

from .config import Config, load_config
from .errors import UserError
from .fold_pool import FoldTask, slot_envs, train_pool
from .layout import Outputs, base_run, fold_run


def missing_folds(config: Config, outputs_folder: Path) -> list[int]:
    """The folds still to train. A complete fold trained with another config is an error: its
    predictions would be mixed with the new config's (change `version` to start a new run)."""
    missing = []
    for fold in range(config.crossvalidation.folds):
        run = Outputs(Path(outputs_folder)).run(fold_run(base_run(config), fold))
        if not run.complete():
            missing.append(fold)
            continue
        key = run.config_mismatch(config)
        if key is not None:
            raise UserError(
                f"{run.config}: fold {fold} was trained with a different config ({key}); bump "
                f"'version' to start a new run, or delete {run.run}'s outputs to retrain it"
            )
    return missing


def check_folds_in_range(folds: list[int], config: Config) -> None:
    """`--folds` (sorted) must name folds the config has."""
    total = config.crossvalidation.folds
    if folds[-1] >= total:
        raise UserError(f"--folds {folds[-1]} is out of range: the config has {total} folds")


def visible_gpus() -> list[str]:
    """The GPUs a child process may be pinned to: `CUDA_VISIBLE_DEVICES` when set, else those
    `nvidia-smi -L` lists; none without a GPU driver."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        ids = [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",")]
        return [] if not ids[0] or ids[0].startswith("-") else [d for d in ids if d]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(k) for k, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def run_recipe(
    config_files: list[Path],
    data_folder: Path,
    outputs_folder: Path,
    jobs: int | None = None,
    only: list[int] | None = None,
) -> dict:
    """Train every config's missing folds (of `only`, if given), `jobs` at a time, then each
    config's fold ensemble and, with several configs, the blend of their runs (weights and rule
    tuned out of fold, `blend.run_blend`): a recipe as one resumable command. Every config is
    read first, so a bad or repeated one fails before any training. Returns the last summary."""
    paths = [Path(path) for path in config_files]
    configs = load_recipe(paths, only)
    tasks = []
    for path, config in zip(paths, configs, strict=True):
        tasks += fold_tasks(path, config, outputs_folder, only)
    train_tasks(tasks, jobs, data_folder, outputs_folder)
    from .ensemble import run_ensemble

    bases = [base_run(config) for config in configs]
    summaries = [run_ensemble(outputs_folder, base, data_folder, only=only) for base in bases]
    if len(bases) == 1:
        return summaries[0]
    from .blend import run_blend

    return run_blend(outputs_folder, bases, data_folder, only=only)


def load_recipe(config_files: list[Path], only: list[int] | None) -> list[Config]:
    """Every config, checked: distinct runs, and `only` within each one's folds."""
    configs = [load_config(path) for path in config_files]
    bases = [base_run(config) for config in configs]
    repeated = sorted({base for base in bases if bases.count(base) > 1})
    if repeated:
        raise UserError(f"--config-file: run {repeated[0]} is named twice; blend distinct runs")
    for config in configs:
        if only is not None:
            check_folds_in_range(only, config)
    return configs


def fold_tasks(
    config_file: Path, config: Config, outputs_folder: Path, only: list[int] | None
) -> list[FoldTask]:
    """The config's folds still to train (of `only`, if given), said on the console."""
    base, total = base_run(config), config.crossvalidation.folds
    missing = [k for k in missing_folds(config, outputs_folder) if only is None or k in only]
    print(f"{base}: {total - len(missing)} of {total} folds complete; training {missing or 'none'}")
    return [FoldTask(config_file, config, fold) for fold in missing]


def default_jobs(gpus: list[str]) -> int:
    """Folds at once when `--jobs` is not given: one per GPU with several GPUs, else one."""
    return max(1, len(gpus))


def train_tasks(tasks: list[FoldTask], jobs: int | None, data_folder: Path, outputs_folder) -> None:
    """Train `tasks` in this process one after another (one job, or one task), else as a pool
    of `jobs` child processes (`fold_pool`)."""
    gpus = visible_gpus()
    jobs = default_jobs(gpus) if jobs is None else jobs
    if jobs > 1 and len(tasks) > 1:
        envs = slot_envs(min(jobs, len(tasks)), gpus)
        train_pool(tasks, envs, data_folder, outputs_folder)
        return
    for task in tasks:
        train_sequential(task.config, [task.fold], data_folder, outputs_folder)


def train_sequential(config: Config, folds: list[int], data_folder: Path, outputs_folder: Path):
    """Train `folds` one after another in this process, freeing each fold's model after it."""
    import keras

    from . import fold_training

    for k in folds:
        fold_training.train_fold(config, k, data_folder, outputs_folder)
        keras.backend.clear_session()
