"""The one real training run the tests share (session scope: the longest fixture of the suite).

Two folds of a tiny config train at once into one outputs folder through the real command line.
Fold 2 is paused (SIGSTOP) once its third epoch is checkpointed, so the kill always lands in
stage 1 however fast the machine is; while it is paused, the same fold started a second time must
refuse (its lock holder is alive); then fold 2 is killed with SIGKILL, rerun, and resumes.
test_train_fold.py checks both folds' outputs and scores; test_resume.py checks the resume, the
refusal and the lock.

Under pytest-xdist every test that uses the run goes to one worker (`xdist_group`), so the run is
trained once per session, not once per worker.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One xdist worker per core: one thread each (set before TensorFlow is imported; training
    # subprocesses inherit it), so the workers do not oversubscribe the cores and spin.
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest  # noqa: E402
from tgssalt.resume import load_state  # noqa: E402
from tgssalt.synthetic import generate_dataset  # noqa: E402

CODE = Path(__file__).resolve().parents[1]
STAGE1_EPOCHS = 15  # the kill comes after epoch 3, well inside stage 1
INPUT_SIZE = 48  # the 101 px images resized (and predictions resized back): 0.23x the compute
TINY = {
    "version": 3,
    "name": "tiny-%s",
    "crossvalidation": {"folds": 3},
    "input": {"size": INPUT_SIZE},
    "model": {"start_filters": 8, "depth": 3, "dropout": 0.1},
    "stage1": {
        "epochs": STAGE1_EPOCHS,
        "batch_size": 8,
        "learning_rate": 0.003,
        "early_stopping_patience": STAGE1_EPOCHS,
    },
    "stage2": {"epochs": 3, "batch_size": 8, "learning_rate": 0.001},
    "predict": {"batch_size": 32},
}
KILLED_FOLD = 2
# Credentials a user may have in the environment: none may reach any output, log or MLflow.
SECRET = "s3cr3t-7f1c9e-token"
CREDENTIALS = {"KAGGLE_KEY": SECRET, "KAGGLE_API_TOKEN": SECRET, "AZURE_CLIENT_SECRET": SECRET}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **CREDENTIALS}


def train_command(root: Path, fold: int, *extra: str) -> list[str]:
    """`train_fold.py` for one fold; --data-folder is a parent holding data/ (the Azure mount)."""
    return [
        sys.executable,
        str(CODE / "train_fold.py"),
        "--config-file",
        str(root / "tiny.json"),
        "--cv-currentfold",
        str(fold),
        "--data-folder",
        str(root),
        "--outputs-folder",
        str(root / "outputs"),
        *extra,
    ]


def run_command(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=900)


def _wait_for_epochs(resume_file: Path, epochs: int, process: subprocess.Popen) -> None:
    """Block until the resume checkpoint records `epochs` complete epochs."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if resume_file.is_file() and load_state(resume_file).record.next_epoch >= epochs:
            return
        time.sleep(0.2)
    raise AssertionError(f"{resume_file} never reached epoch {epochs} ({process.poll()=})")


def _uses_shared_run(item) -> bool:
    return bool({"e2e", "trained"} & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marker into a group
def pytest_collection_modifyitems(items) -> None:
    """Send every test of the shared run to one xdist worker (see the module docstring), and
    run them first: the run is the longest piece of the suite, so it starts at once while the
    other workers take the rest."""
    for item in items:
        if _uses_shared_run(item):
            item.add_marker(pytest.mark.xdist_group("e2e"))
    items.sort(key=lambda item: not _uses_shared_run(item))  # stable: the order otherwise kept


@pytest.fixture(scope="session")
def e2e(tmp_path_factory) -> dict:
    """Train folds 0 and 2 at once, pause fold 2 mid-stage 1, try it twice, kill and resume it."""
    root = tmp_path_factory.mktemp("e2e")
    generate_dataset(root / "data", n_train=300, n_test=30, seed=1)
    (root / "tiny.json").write_text(json.dumps(TINY))
    quiet = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": ENV}
    whole = subprocess.Popen(train_command(root, 0), **quiet)
    victim = subprocess.Popen(train_command(root, KILLED_FOLD), **quiet)
    resume_file = root / "outputs" / "models" / f"tiny-3-cvfold{KILLED_FOLD}-stage1.resume.npz"
    _wait_for_epochs(resume_file, 3, victim)
    os.kill(victim.pid, signal.SIGSTOP)
    twin = run_command(train_command(root, KILLED_FOLD))
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    resumed = run_command(train_command(root, KILLED_FOLD))
    whole_out, whole_err = whole.communicate(timeout=900)
    assert whole.returncode == 0, whole_err[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logs = [whole_out, whole_err, twin.stdout, twin.stderr, resumed.stdout, resumed.stderr]
    return {"root": root, "twin": twin, "resumed": resumed, "logs": logs}


@pytest.fixture(scope="session")
def trained(e2e) -> Path:
    """The root of the shared run: data/, outputs/ and tiny.json."""
    return e2e["root"]
