"""Training configs: shipped files load, defaults fill in, bad input is a one-line error."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
from tgssalt.config import DEFAULTS, load_config, resolve_config, save_config
from tgssalt.errors import UserError
from tgssalt.layout import run_name
from tgssalt.paths import CONFIG_FOLDER

SHIPPED = sorted(CONFIG_FOLDER.rglob("*.json"))


def test_shipped_configs_are_found() -> None:
    names = {p.name for p in SHIPPED}
    assert {"unet-resnet.json", "demo.json", "unet-resnet-test.json"} <= names
    assert any(p.parent.name == "test" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIG_FOLDER)))
def test_shipped_config_loads(path: Path) -> None:
    config = load_config(path)
    assert set(config.to_dict()) == set(DEFAULTS)
    encoder = json.loads(path.read_text()).get("encoder")
    written = None if config.encoder is None else config.to_dict()["encoder"]
    assert written == (encoder and {"type": "Unet", "weights": "imagenet", **encoder})
    assert run_name(config.name, config.version, 0).endswith("-1-cvfold0")


def test_run_name() -> None:
    assert run_name("unet-resnet-%s", 1, None) == "unet-resnet-1"
    assert run_name("unet-resnet-%s", 3, 2) == "unet-resnet-3-cvfold2"
    assert run_name("plain", 7, 0) == "plain-cvfold0"


def test_defaults_fill_missing_optional_keys() -> None:
    config = load_config(CONFIG_FOLDER / "demo.json")
    assert config.model.start_filters == 8  # from the file
    assert config.model.type == DEFAULTS["model"]["type"]  # nested default kept
    assert config.crossvalidation.validation_split == 0.2
    assert config.stage1.learning_rate == 0.003
    assert config.stage1.loss == DEFAULTS["stage1"]["loss"]
    assert config.stage2.loss == "lovasz_hinge"
    for key in ("seed", "augmentation", "tta", "predict"):
        assert config.to_dict()[key] == DEFAULTS[key]
    assert "model.start_filters" in config.user_keys and "seed" not in config.user_keys


def test_resolve_empty_config_is_defaults_and_leaves_defaults_alone() -> None:
    before = copy.deepcopy(DEFAULTS)
    config = resolve_config({})
    assert config.to_dict() == DEFAULTS
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.stage1.epochs = 999
    assert before == DEFAULTS


def test_int_accepted_for_float() -> None:
    config = resolve_config({"stage1": {"learning_rate": 1}})
    assert config.stage1.learning_rate == 1.0
    assert isinstance(config.stage1.learning_rate, float)


def test_saved_config_round_trips(tmp_path: Path) -> None:
    config = load_config(CONFIG_FOLDER / "unet-resnet-cpu.json")
    save_config(config, tmp_path / "saved.json")
    assert resolve_config(json.loads((tmp_path / "saved.json").read_text())) == config
    assert load_config(tmp_path / "saved.json") == config


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def load_error(path: Path) -> str:
    """The message of the UserError `load_config(path)` raises, checked to be one line."""
    with pytest.raises(UserError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        # unknown keys, with the valid ones listed
        ({"epochs": 5}, ["'epochs'", "valid keys:", "stage1", "crossvalidation"]),
        ({"stage1": {"epoch": 5}}, ["'stage1.epoch'", "valid keys:", "epochs"]),
        ({"encoder": {"backbone": "x", "colour": 1}}, ["'encoder.colour'"]),
        # wrong types
        ({"stage1": {"epochs": "5"}}, ["'stage1.epochs'", "must be int", "'5'"]),
        ({"stage1": {"epochs": True}}, ["'stage1.epochs'", "must be int"]),
        ({"crossvalidation": {"folds": 2.0}}, ["'crossvalidation.folds'", "must be int"]),
        ({"stage2": {"learning_rate": "1e-3"}}, ["'stage2.learning_rate'", "must be float"]),
        ({"stage2": {"learning_rate": False}}, ["'stage2.learning_rate'", "must be float"]),
        ({"input": {"normalize": 1}}, ["'input.normalize'", "must be bool"]),
        ({"stage1": 5}, ["'stage1'", "must be an object"]),
        ({"name": 5}, ["'name'", "must be str"]),
        ({"predict": {"thresholds": 0.5}}, ["'predict.thresholds'", "must be list"]),
        ({"encoder": "resnet34"}, ["'encoder'", "object or null"]),
        ({"encoder": {"type": "Unet"}}, ["'encoder.backbone'", "required"]),
        ({"encoder": {"backbone": 34}}, ["'encoder.backbone'", "must be str"]),
        ({"encoder": {"backbone": "resnet34", "weights": 1}}, ["'encoder.weights'", "imagenet"]),
        ({"model": {"scse": 1}}, ["'model.scse'", "must be bool"]),
        ({"model": {"hypercolumn": "yes"}}, ["'model.hypercolumn'", "must be bool"]),
        ({"model": {"deep_supervision": 1}}, ["'model.deep_supervision'", "must be bool"]),
        ({"input": {"coord_channels": "y"}}, ["'input.coord_channels'", "must be bool"]),
        ({"stage2": {"schedule": "step"}}, ["'stage2.schedule'", "'step'", "cosine", "plateau"]),
        ({"stage2": {"cycles": 0}}, ["'stage2.cycles'", "1..epochs"]),
        ({"stage1": {"epochs": 4, "cycles": 5}}, ["'stage1.cycles'", "1..epochs"]),
        # names from registries, with the known ones listed
        ({"stage1": {"loss": "dice"}}, ["'stage1.loss'", "'dice'", "known:", "bce", "lovasz"]),
        ({"stage2": {"optimizer": "adagrad"}}, ["'stage2.optimizer'", "'adagrad'", "adam"]),
        ({"model": {"type": "fcn"}}, ["'model.type'", "unet_resnet"]),
        ({"encoder": {"backbone": "vgg16"}}, ["'encoder.backbone'", "'vgg16'", "resnet34"]),
        ({"encoder": {"backbone": "resnet34", "type": "PSPNet"}}, ["'encoder.type'", "Linknet"]),
        # out-of-range values
        ({"crossvalidation": {"folds": 0}}, ["'crossvalidation.folds'", ">= 1"]),
        ({"crossvalidation": {"validation_split": 1}}, ["'crossvalidation.validation_split'"]),
        ({"input": {"channels": 2}}, ["'input.channels'", "1 or 3"]),
        ({"input": {"size": 16}}, ["'input.size'"]),
        ({"model": {"dropout": 1.0}}, ["'model.dropout'"]),
        ({"model": {"depth": 0}}, ["'model.depth'"]),
        ({"stage1": {"batch_size": 0}}, ["'stage1.batch_size'"]),
        ({"stage2": {"epochs": -1}}, ["'stage2.epochs'"]),
        ({"stage1": {"learning_rate": 0}}, ["'stage1.learning_rate'"]),
        ({"stage1": {"reduce_lr_factor": 1.5}}, ["'stage1.reduce_lr_factor'"]),
        ({"stage2": {"early_stopping_patience": -1}}, ["'stage2.early_stopping_patience'"]),
        ({"stage1": {"epochs_weights_frozen": -1}}, ["'stage1.epochs_weights_frozen'"]),
        ({"predict": {"batch_size": 0}}, ["'predict.batch_size'"]),
        ({"data": {"small_salt_repeats": 0}}, ["'data.small_salt_repeats'", ">= 1"]),
        ({"predict": {"thresholds": [0.8, 0.2, 31]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": [0.2, 0.8]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": [0.2, 0.8, 31, 1]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": [0.2, 0.8, 0]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": [0.2, 0.8, 3.5]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": [0.0, 0.8, 31]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": ["a", 0.8, 31]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": [None, 0.8, 31]}}, ["'predict.thresholds'"]),
        ({"predict": {"thresholds": [0.2, 0.8, True]}}, ["'predict.thresholds'"]),
        # the run name takes the version once
        ({"name": "run-%s-%s"}, ["'name'", "at most one %s"]),
        ({"name": "run-100%"}, ["'name'", "at most one %s"]),
    ],
)
def test_bad_key_is_one_line_naming_file_and_key(
    tmp_path: Path, user: dict, expected: list[str]
) -> None:
    message = load_error(write(tmp_path, user))
    for part in expected:
        assert part in message


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "version": 1,\n  "name": "x-%s"\n  "seed": 3\n}\n')
    message = load_error(path)
    assert "invalid JSON" in message and "line 4" in message


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in load_error(tmp_path / "nope.json")


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    assert "not found" in load_error(tmp_path)


@pytest.mark.parametrize("content", ["[1, 2]", '"unet"', "null", "3"])
def test_non_object_json(tmp_path: Path, content: str) -> None:
    assert "JSON object" in load_error(write(tmp_path, content))


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"name": "\xff\xfe"}')
    assert "cannot read config" in load_error(path)
