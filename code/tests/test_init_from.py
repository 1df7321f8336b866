"""`init`: a fold starts from another config's trained model of the same fold.

The shared run `tiny-3` (conftest.py) is the init run. A config that starts from its fold-0
`stage2` model and trains 0 epochs must predict exactly what `tiny-3` predicted; a wrong init
(missing run, other folds, another architecture) fails before anything is written."""

import json
import shutil

import numpy as np
import pytest
from conftest import TINY
from tgssalt.config import resolve_config
from tgssalt.errors import UserError
from tgssalt.fold_training import train_fold
from tgssalt.layout import Outputs
from tgssalt.predictions import load_predictions
from tgssalt.seeds import seed_config

INIT = {"name": "tiny-%s", "version": 3, "stage": "stage2"}


def _config(**changes):
    """The tiny config renamed, starting from `tiny-3`, training nothing unless changed."""
    user = {**TINY, "name": "tiny-init-%s", "init": INIT}
    user["stage1"] = {**TINY["stage1"], "epochs": 0}
    user["stage2"] = {**TINY["stage2"], "epochs": 0}
    for section, values in changes.items():
        user[section] = {**user.get(section, {}), **values}
    return resolve_config(user)


def _outputs_with_init_run(trained, tmp_path):
    """A fresh outputs folder holding only `tiny-3` fold 0's model and config."""
    models = tmp_path / "outputs" / "models"
    models.mkdir(parents=True)
    for suffix in ("stage2.keras", "config.json"):
        shutil.copy(trained / "outputs" / "models" / f"tiny-3-cvfold0-{suffix}", models)
    return tmp_path / "outputs"


def test_a_fold_started_from_a_run_predicts_what_that_run_predicted(trained, tmp_path):
    outputs = _outputs_with_init_run(trained, tmp_path)
    metrics = train_fold(_config(), 0, trained, outputs)
    ours = load_predictions(outputs / "predictions" / "tiny-init-3-cvfold0-valid.npz")
    theirs = load_predictions(trained / "outputs" / "predictions" / "tiny-3-cvfold0-valid.npz")
    assert list(ours[0]) == list(theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    reference = json.loads((trained / "outputs/models/tiny-3-cvfold0-metrics.json").read_text())
    assert metrics["validation_score"] == reference["validation_score"]


def test_a_missing_init_run_is_refused_before_anything_is_written(trained, tmp_path):
    outputs = tmp_path / "outputs"
    with pytest.raises(UserError, match=r"init.name.*tiny-3-cvfold1-stage2.keras not found"):
        train_fold(_config(), 1, trained, outputs)
    assert not outputs.exists() or not any(path.is_file() for path in outputs.rglob("*"))


def test_an_init_run_on_other_folds_is_refused(trained, tmp_path):
    outputs = _outputs_with_init_run(trained, tmp_path)
    other_folds = _config(crossvalidation={"split_seed": 1})
    with pytest.raises(UserError, match="trained on other folds"):
        train_fold(other_folds, 0, trained, outputs)
    assert not Outputs(outputs).run("tiny-init-3-cvfold0").config.exists()


def test_an_init_model_of_another_architecture_is_refused(trained, tmp_path):
    outputs = _outputs_with_init_run(trained, tmp_path)
    wider = _config(model={"start_filters": 16})
    with pytest.raises(UserError, match=r"another model \(model.start_filters: 8 -> 16\)"):
        train_fold(wider, 0, trained, outputs)
    assert not Outputs(outputs).run("tiny-init-3-cvfold0").config.exists()


def test_init_keys_are_checked():
    with pytest.raises(UserError, match=r"init.stage.*known: stage1, stage2"):
        _config(init={"stage": "stage3"})
    with pytest.raises(UserError, match="init.version' does not apply"):
        resolve_config({"init": {"version": 2}})
    with pytest.raises(UserError, match="init.name"):
        _config(init={"name": "../elsewhere-%s"})


def test_each_seed_starts_from_the_init_configs_copy_under_that_seed():
    config = _config()
    assert seed_config(config, config.seed).init.name == "tiny-%s"
    assert seed_config(config, 1).init.name == "tiny-seed1-%s"
    assert seed_config(config, 1).name == "tiny-init-seed1-%s"
