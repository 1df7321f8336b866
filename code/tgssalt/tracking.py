"""MLflow tracking: a local store inside the outputs folder unless `MLFLOW_TRACKING_URI` is set.

Azure ML sets `MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID` in its jobs, so the same code reports to
the job's run in its studio.
"""

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import keras

from .atomic import write_text
from .lock import exclusive


def _flatten(config: dict, prefix: str = "") -> dict:
    """{"stage1": {"epochs": 5}} -> {"stage1.epochs": 5} for MLflow params."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@contextlib.contextmanager
def mlflow_run(outputs_folder: Path, experiment: str, run_name: str, params: dict) -> Iterator:
    """Start an MLflow run logging `params` (a resolved config's `to_dict()`, nested dicts
    flattened to dotted keys) as params; yields the `mlflow` module."""
    mlflow = prepare_experiment(outputs_folder, experiment)
    with mlflow.start_run(run_name=run_name) as run:
        flat = {k: str(v)[:250] for k, v in _flatten(params).items()}
        # A restarted Azure ML job attaches to its run again, which has these params already:
        # log only the missing ones (re-logging one may be refused by the tracking server).
        logged = mlflow.get_run(run.info.run_id).data.params
        mlflow.log_params({k: v for k, v in flat.items() if k not in logged})
        yield mlflow


def prepare_experiment(outputs_folder: Path, experiment: str):
    """Point MLflow at its store and make `experiment` the active one, creating it if needed.

    Fold processes sharing one outputs folder take turns here (a file lock), because MLflow
    creates and migrates the local database, and the experiment, on first use: two processes
    doing that at once fail. Returns the `mlflow` module.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        with exclusive(Path(outputs_folder) / ".mlflow.lock"):
            mlflow.set_tracking_uri(f"sqlite:///{(Path(outputs_folder) / 'mlflow.db').resolve()}")
            # set_tracking_uri also exports MLFLOW_TRACKING_URI; undo that, or the next outputs
            # folder of this process (and every child process) would log into this one's store.
            os.environ.pop("MLFLOW_TRACKING_URI", None)
            if mlflow.get_experiment_by_name(experiment) is None:
                artifacts = (Path(outputs_folder) / "mlruns").resolve().as_uri()
                mlflow.create_experiment(experiment, artifact_location=artifacts)
    if not os.environ.get("MLFLOW_RUN_ID"):
        # With MLFLOW_RUN_ID set (Azure ML sets it, with the tracking URI, in its jobs),
        # start_run attaches to that run in the job's own experiment: making `experiment` the
        # active one first would make MLflow refuse the run.
        mlflow.set_experiment(experiment)
    return mlflow


def run_finished(run_id: str) -> bool:
    """Whether the MLflow run `run_id` (in Azure ML, a job's name) has ended; False when it cannot
    be read. A fold lock left by a finished job is stale (`lock.is_stale`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    try:
        return mlflow.get_run(run_id).info.status in ("FINISHED", "FAILED", "KILLED")
    except Exception:  # noqa: BLE001 - unreachable server, unknown run: assume it runs
        return False


def log_fold_metrics(metrics: dict, path: Path) -> None:
    """Write a fold's metrics JSON atomically and log its numbers and the file to MLflow."""
    import mlflow

    write_text(path, json.dumps(metrics, indent=2) + "\n")
    mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    mlflow.log_artifact(str(path))


class MlflowMetrics(keras.callbacks.Callback):
    """Log every epoch's metrics (loss, score, val_*, learning rate) to the active MLflow run."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        import mlflow

        metrics = {f"{self.prefix}_{k}": float(v) for k, v in (logs or {}).items()}
        mlflow.log_metrics(metrics, step=epoch)
