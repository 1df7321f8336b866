"""Train folds as child processes, several at once: `run_folds.py --jobs N`.

Each running fold is one `train_fold.py` process in a slot. With GPUs a slot is a GPU (the
process sees only it, `CUDA_VISIBLE_DEVICES`); with more jobs than GPUs the slots take the GPUs
in turn, so several folds share a GPU, each with its own memory pool. Without GPUs a slot is an
equal share of the CPU cores: the process's thread pools are limited to it. Small U-Nets leave a
core idle between the many small kernels of one step, so on a CPU several 1-thread folds train
more images per second together than one fold on every core
(`code/benchmarks/cpu_jobs.py`). Each fold writes only its own files (the config's split file
is the same rows whichever fold writes it, atomically), so the folds of several configs can
share one pool.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .device import usable_cores
from .errors import UserError
from .layout import Outputs, base_run, fold_run

TRAIN_FOLD = Path(__file__).resolve().parents[1] / "train_fold.py"


@dataclass(frozen=True)
class FoldTask:
    """One fold of one config: the file a child process reads, and the config it holds for
    training in this process."""

    config_file: Path
    config: Config
    fold: int

    @property
    def base(self) -> str:
        return base_run(self.config)

    @property
    def run(self) -> str:
        return fold_run(self.base, self.fold)


def cpu_share_env(threads: int) -> dict:
    """The environment that limits a TensorFlow, JAX (XLA) or PyTorch process to `threads`
    compute threads, with one inter-op thread: each framework reads it once, at import."""
    xla = os.environ.get("XLA_FLAGS", "")
    eigen = "true" if threads > 1 else "false"
    return {
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": str(threads),
        "XLA_FLAGS": f"{xla} --xla_cpu_multi_thread_eigen={eigen} "
        f"intra_op_parallelism_threads={threads}".strip(),
    }


def slot_envs(jobs: int, gpus: list[str]) -> list[dict]:
    """The environment of each of `jobs` slots: the GPUs in turn (with more jobs than GPUs,
    JAX and TensorFlow allocate GPU memory as they need it rather than most of the GPU up front,
    so processes can share one), else an equal share of the usable cores, at least one thread
    each."""
    if gpus:
        share = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
        share = share if jobs > len(gpus) else {}
        return [{"CUDA_VISIBLE_DEVICES": gpus[k % len(gpus)], **share} for k in range(jobs)]
    return [cpu_share_env(max(1, usable_cores() // jobs)) for _ in range(jobs)]


def slot_name(env: dict) -> str:
    """How logs name a slot: its GPU, or its CPU threads."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return f"GPU {env['CUDA_VISIBLE_DEVICES']}"
    return f"CPU, {env['TF_NUM_INTRAOP_THREADS']} thread(s)"


def fold_command(task: FoldTask, data_folder: Path, outputs_folder: Path) -> list:
    """The `train_fold.py` command line of one fold, run with this Python."""
    return [
        sys.executable,
        str(TRAIN_FOLD),
        "--config-file",
        str(task.config_file),
        "--cv-currentfold",
        str(task.fold),
        "--data-folder",
        str(data_folder),
        "--outputs-folder",
        str(outputs_folder),
    ]


def train_pool(
    tasks: list[FoldTask],
    envs: list[dict],
    data_folder: Path,
    outputs_folder: Path,
    popen=subprocess.Popen,
    poll_seconds: float = 10.0,
) -> None:
    """Train `tasks` as child processes, one per slot at a time, in order; when all are done,
    fail listing every fold that failed. `popen` is replaceable for tests. Each config's MLflow
    experiment is created first, so the children do not race to create it."""
    from .tracking import prepare_experiment

    outputs = Outputs(Path(outputs_folder))
    for base in dict.fromkeys(task.base for task in tasks):
        prepare_experiment(outputs.root, base)
    (outputs.root / "logs").mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(tasks), {}, []
    while pending or running:
        for slot in [s for s in range(len(envs)) if s not in running][: len(pending)]:
            task = pending.pop(0)
            running[slot] = (task, _start(popen, task, envs[slot], data_folder, outputs))
        for slot, (task, process) in list(running.items()):
            if process.poll() is not None:
                del running[slot]
                _report(outputs, task.run, slot_name(envs[slot]), process.returncode, failed)
        if running:
            time.sleep(poll_seconds)
    if failed:
        raise UserError(f"fold(s) failed: {'; '.join(failed)}")


def _start(popen, task: FoldTask, env: dict, data_folder, outputs: Outputs):
    """Start one fold's process in one slot, its output going to its log file."""
    log = outputs.child_log(task.run)
    print(f"{task.run}: training on {slot_name(env)}, log {log}", flush=True)
    with open(log, "w") as handle:
        return popen(
            fold_command(task, data_folder, outputs.root),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


def _report(outputs: Outputs, run: str, slot: str, returncode: int, failed: list) -> None:
    """Say how a fold's process ended; remember it when it failed."""
    if returncode == 0:
        print(f"{run}: done ({slot})", flush=True)
        return
    log = outputs.child_log(run)
    lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
    last = lines[-1] if lines else "no output"
    print(f"{run}: failed with exit status {returncode} ({slot}): {last}", file=sys.stderr)
    failed.append(f"{run} (exit {returncode}, see {log})")
