"""Output plumbing: atomic writes and the MLflow store inside each outputs folder."""

import os


def test_each_outputs_folder_gets_its_own_mlflow_store(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; two folders must not share a store."""
    from tgssalt.tracking import mlflow_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("a", "b"):
        with mlflow_run(tmp_path / name, "exp", f"run-{name}", {"k": 1}) as mlflow:
            mlflow.log_metric("m", 1.0)
        assert (tmp_path / name / "mlflow.db").is_file()
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    from tgssalt.atomic import write_text

    write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o044 == 0o044  # group and others can read
