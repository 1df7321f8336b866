"""Every cross-validation fold of a config, then their ensemble, and the blend of several
configs' runs: what `run_folds.py` runs.

A fold is complete when its metrics JSON and test predictions exist (`fold_training.train_fold`
writes them last), so an interrupted run trains only the missing folds, each resuming from its
last complete epoch. With one GPU or none the folds train one after another in this process; with
several visible GPUs each fold runs as a `train_fold.py` process pinned to one GPU
(`CUDA_VISIBLE_DEVICES`), one fold per GPU at a time, its output in `logs/<run>.log`. The first
fold to start writes the config's split file (`splits.py`), which every other fold reads. The
ensemble runs once every fold is complete.
"""

import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .config import Config, load_config
from .errors import UserError
from .layout import Outputs, base_run, fold_run

TRAIN_FOLD = Path(__file__).resolve().parents[1] / "train_fold.py"


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


def run_folds(
    config_file: Path,
    data_folder: Path,
    outputs_folder: Path,
    parallel: bool = True,
    only: list[int] | None = None,
) -> dict:
    """Train the config's missing folds (of `only`, if given), then ensemble them."""
    config = load_config(config_file)
    base = base_run(config)
    total = config.crossvalidation.folds
    if only is not None:
        check_folds_in_range(only, config)
    missing = [k for k in missing_folds(config, outputs_folder) if only is None or k in only]
    print(f"{base}: {total - len(missing)} of {total} folds complete; training {missing or 'none'}")
    gpus = visible_gpus() if parallel else []
    if len(gpus) > 1 and len(missing) > 1:
        train_parallel(Path(config_file), missing, gpus, data_folder, outputs_folder, base)
    else:
        train_sequential(config, missing, data_folder, outputs_folder)
    from .ensemble import run_ensemble

    return run_ensemble(outputs_folder, base, data_folder, only=only)


def run_recipe(
    config_files: list[Path],
    data_folder: Path,
    outputs_folder: Path,
    parallel: bool = True,
    only: list[int] | None = None,
) -> dict:
    """Every config's folds and ensemble (`run_folds`); with several configs, then the blend of
    their runs, weights and rule tuned out of fold (`blend.run_blend`): a blend recipe as one
    resumable command. Every config is read first, so a bad or repeated one fails before any
    training."""
    bases = [base_run(load_config(path)) for path in config_files]
    repeated = sorted({base for base in bases if bases.count(base) > 1})
    if repeated:
        raise UserError(f"--config-file: run {repeated[0]} is named twice; blend distinct runs")
    summaries = [
        run_folds(path, data_folder, outputs_folder, parallel, only) for path in config_files
    ]
    if len(bases) == 1:
        return summaries[0]
    from .blend import run_blend

    return run_blend(outputs_folder, bases, data_folder, only=only)


def train_sequential(config: Config, folds: list[int], data_folder: Path, outputs_folder: Path):
    """Train `folds` one after another in this process, freeing each fold's model after it."""
    import keras

    from . import fold_training

    for k in folds:
        fold_training.train_fold(config, k, data_folder, outputs_folder)
        keras.backend.clear_session()


def fold_command(config_file: Path, fold: int, data_folder: Path, outputs_folder: Path) -> list:
    """The `train_fold.py` command line of one fold, run with this Python."""
    return [
        sys.executable,
        str(TRAIN_FOLD),
        "--config-file",
        str(config_file),
        "--cv-currentfold",
        str(fold),
        "--data-folder",
        str(data_folder),
        "--outputs-folder",
        str(outputs_folder),
    ]


def train_parallel(
    config_file: Path,
    folds: list[int],
    gpus: list[str],
    data_folder: Path,
    outputs_folder: Path,
    base: str,
    popen=subprocess.Popen,
    poll_seconds: float = 10.0,
) -> None:
    """Train `folds` as child processes, one per GPU at a time; fail listing any failed fold.

    `popen` is replaceable for tests. The MLflow experiment is created first, so the children do
    not race to create it.
    """
    from .tracking import prepare_experiment

    prepare_experiment(Path(outputs_folder), base)
    outputs = Outputs(Path(outputs_folder))
    (outputs.root / "logs").mkdir(parents=True, exist_ok=True)
    start = functools.partial(_start, popen, config_file, data_folder, outputs, base)
    pending, running, failed = list(folds), {}, []
    while pending or running:
        for gpu in [g for g in gpus if g not in running][: len(pending)]:
            fold = pending.pop(0)
            running[gpu] = (fold, start(fold, gpu))
        for gpu, (fold, process) in list(running.items()):
            if process.poll() is not None:
                del running[gpu]
                _report(outputs, fold_run(base, fold), gpu, process.returncode, failed)
        if running:
            time.sleep(poll_seconds)
    if failed:
        raise UserError(f"{base}: fold(s) failed: {'; '.join(failed)}")


def _start(popen, config_file, data_folder, outputs: Outputs, base, fold, gpu):
    """Start one fold's process on one GPU, its output going to its log file."""
    run = fold_run(base, fold)
    log = outputs.child_log(run)
    print(f"{run}: training on GPU {gpu}, log {log}")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    with open(log, "w") as handle:
        return popen(
            fold_command(config_file, fold, data_folder, outputs.root),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _report(outputs: Outputs, run: str, gpu: str, returncode: int, failed: list) -> None:
    """Say how a fold's process ended; remember it when it failed."""
    if returncode == 0:
        print(f"{run}: done (GPU {gpu})")
        return
    log = outputs.child_log(run)
    lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
    last = lines[-1] if lines else "no output"
    print(f"{run}: failed with exit status {returncode} (GPU {gpu}): {last}", file=sys.stderr)
    failed.append(f"{run} (exit {returncode}, see {log})")
