"""Credentials in the environment (Kaggle, Azure) never reach outputs, logs or MLflow."""

from conftest import SECRET


def test_no_credential_in_any_output_file_or_log(e2e):
    leaks = [
        str(path)
        for path in (e2e["root"] / "outputs").rglob("*")
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert not leaks
    assert not any(SECRET in text for text in e2e["logs"])
    assert (e2e["root"] / "outputs" / "mlflow.db").stat().st_size > 0  # the store was checked
