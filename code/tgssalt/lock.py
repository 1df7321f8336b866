"""One trainer per fold (a lock file in the outputs folder, created atomically), and short
critical sections shared by the processes of one outputs folder (`exclusive`).

Two processes training different folds into one outputs folder never clash (each fold has its
own files); the same fold started twice would, so the second refuses clearly. A lock left by a
killed process is taken over: on the same host when its process is gone, and in an Azure ML job
when the lock is the same job's (a preempted low-priority node restarting the job) or a
different job's that has finished (a fold submitted again after its job failed: the fold's
output path is the same for both jobs).
"""

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; `exclusive` runs its section unguarded
    fcntl = None


def _owner() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job": os.environ.get("AZUREML_RUN_ID", ""),
    }


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # unreadable: a process killed while writing it; treated as stale below


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def is_stale(holder: dict, me: dict, job_finished=None) -> bool:
    """Whether a lock's holder is certainly gone, so the lock may be taken over.

    `job_finished(job)` says whether another Azure ML job has ended (default: its MLflow run's
    status, `tracking.run_finished`); a job whose state cannot be read counts as running.
    """
    if not holder:
        return True
    if me["job"] and holder.get("job") == me["job"]:
        return True
    if me["job"] and holder.get("job"):
        if job_finished is None:
            from .tracking import run_finished as job_finished
        return job_finished(holder["job"])
    return holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1)))


def _create(path: Path, owner: dict) -> bool:
    """Create the lock file atomically; False when it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(owner, handle)
    return True


@contextlib.contextmanager
def fold_lock(path: Path, run: str) -> Iterator[None]:
    """Hold `path` while training `run`; refuse when another live process holds it."""
    me = _owner()
    if not _create(path, me):
        holder = _read(path)
        if not is_stale(holder, me):
            raise UserError(
                f"{run}: already being trained by process {holder.get('pid')} on "
                f"{holder.get('host')} (lock file {path}); wait for it to finish, or delete "
                "the lock file if that process is gone"
            )
        print(f"{run}: taking over the lock of a process that is gone ({path})")
        path.unlink(missing_ok=True)
        if not _create(path, me):
            raise UserError(f"{run}: another process took the lock {path} at the same moment")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if needed) for a short section; other
    processes wait. The kernel drops the lock when its process dies, so it is never stale. On a
    file system without locks (some network mounts) the section runs unguarded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except (OSError, AttributeError):  # AttributeError: fcntl is None (Windows)
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
