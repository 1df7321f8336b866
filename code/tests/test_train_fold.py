"""End to end: synthetic data -> `train_fold.py` on two folds -> every output, reloadable models,
and a validation score above the all-empty baseline. Fold 2 was killed with SIGKILL mid-stage and
resumed (see conftest.py): every check here holds for a resumed fold too."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import INPUT_SIZE, STAGE1_EPOCHS
from tgssalt.predictions import load_predictions
from tgssalt.submission import validate_submission

FOLDS = (0, 2)  # trained by the session fixture `trained` (conftest.py); fold 2 was killed


def _run(fold: int) -> str:
    return f"tiny-3-cvfold{fold}"


@pytest.mark.parametrize("fold", FOLDS)
def test_every_output_exists(trained, fold):
    out, run = trained / "outputs", _run(fold)
    expected = [
        f"models/{run}-stage1.keras",
        f"models/{run}-stage2.keras",
        f"models/{run}-config.json",
        f"models/{run}-metrics.json",
        f"figures/{run}-stage1.png",
        f"figures/{run}-stage2.png",
        f"figures/{run}-threshold.png",
        f"figures/{run}-validation.png",
        f"figures/{run}-stage1-log.csv",
        f"predictions/{run}-valid.npz",
        f"predictions/{run}-test.npz",
        f"submissions/{run}-submission.csv",
        "mlflow.db",
    ]
    missing = [name for name in expected if not (out / name).is_file()]
    assert not missing
    assert any((out / "tb_logs" / f"{run}-stage1").rglob("events.out.tfevents*"))
    assert not list(out.rglob("*.tmp*")), "temporary files left behind"


@pytest.mark.parametrize("fold", FOLDS)
def test_score_beats_all_empty_baseline(trained, fold):
    metrics = json.loads(
        (trained / "outputs" / "models" / f"{_run(fold)}-metrics.json").read_text()
    )
    assert metrics["validation_score"] > metrics["empty_baseline_score"] + 0.05
    assert 0 < metrics["threshold"] < 1


def test_models_reload_without_custom_objects(trained):
    model = keras.saving.load_model(
        trained / "outputs" / "models" / f"{_run(0)}-stage2.keras", compile=False
    )
    probs = model.predict(np.zeros((2, INPUT_SIZE, INPUT_SIZE, 1), "float32"), verbose=0)
    assert probs.shape == (2, INPUT_SIZE, INPUT_SIZE, 1) and ((probs >= 0) & (probs <= 1)).all()


def test_submission_and_predictions(trained):
    data = trained / "data"
    sample_ids = pd.read_csv(data / "sample_submission.csv", dtype=str)["id"].tolist()
    sub = validate_submission(
        trained / "outputs" / "submissions" / f"{_run(0)}-submission.csv", expected_ids=sample_ids
    )
    assert sub["id"].tolist() == sample_ids
    ids, probs, meta = load_predictions(trained / "outputs" / "predictions" / f"{_run(0)}-test.npz")
    assert list(ids) == sample_ids and probs.shape == (len(ids), 101, 101)
    assert probs.dtype == np.float16 and meta["run"] == _run(0) and meta["fold"] == 0
    valid_ids = [
        set(load_predictions(trained / "outputs" / "predictions" / f"{_run(f)}-valid.npz")[0])
        for f in FOLDS
    ]
    assert not valid_ids[0] & valid_ids[1], "validation folds overlap"


def test_resolved_config_saved(trained):
    saved = json.loads((trained / "outputs" / "models" / f"{_run(0)}-config.json").read_text())
    assert saved["stage1"]["epochs"] == STAGE1_EPOCHS and saved["input"]["size"] == INPUT_SIZE
    assert saved["stage2"]["loss"] == "lovasz_hinge"
