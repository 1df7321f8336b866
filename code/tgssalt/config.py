"""Training configs: JSON files merged over `DEFAULTS`, validated in one place.

The original project's schema (`version`, `name`, `crossvalidation`, `input`, `stage1`, `stage2`,
`encoder`) loads unchanged; every other key is optional and documented in the README's table.
A wrong key, type or name fails with a one-line `UserError` naming the file and the key.
"""

import copy
import json
from pathlib import Path
from typing import Any

from .errors import UserError

_STAGE = {
    "epochs": 20,
    "batch_size": 16,
    "loss": "bce",
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "early_stopping_patience": 10,
    "reduce_lr_patience": 4,
    "reduce_lr_factor": 0.5,
    "min_lr": 1e-5,
    "schedule": "plateau",
    "cycles": 1,
}

# Learning-rate schedules of a stage: lower on a plateau and stop early (the original's), or
# cosine cycles with snapshot ensembling (`snapshots.py`).
SCHEDULES = {"plateau": "ReduceLROnPlateau + EarlyStopping", "cosine": "cosine cycles, snapshots"}

DEFAULTS: dict[str, Any] = {
    "version": 1,
    "name": "unet-resnet-%s",
    "seed": 5678,
    "crossvalidation": {"folds": 4, "validation_split": 0.2},
    "input": {"size": 101, "channels": 1, "normalize": True, "coord_channels": False},
    "model": {
        "type": "unet_resnet",
        "start_filters": 16,
        "depth": 4,
        "dropout": 0.5,
        "precision": "float32",
        "scse": False,
        "hypercolumn": False,
        "deep_supervision": False,
    },
    "encoder": None,
    "augmentation": {"hflip": True, "brightness": 0.0, "contrast": 0.0},
    "stage1": {**_STAGE, "epochs_weights_frozen": 0},
    "stage2": {
        **_STAGE,
        "epochs": 50,
        "loss": "lovasz_hinge",
        "learning_rate": 5e-4,
        "early_stopping_patience": 16,
        "reduce_lr_patience": 6,
    },
    "tta": {"hflip": True},
    "predict": {"batch_size": 64, "thresholds": [0.2, 0.8, 31]},
}

# Keras dtype policies. Mixed precision is for GPUs: on this 2-core CPU bfloat16 trained no faster.
PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bf16 compute", "mixed_float16": "fp16 (GPU)"}

# Keys whose value is a free-form dict (validated elsewhere) or may be null.
_NULLABLE = {"encoder"}
_ENCODER_KEYS = {"type", "backbone", "weights"}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON config, merge it over `DEFAULTS` and validate it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        user = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(user, dict):
        raise UserError(f"{path}: a config must be a JSON object")
    try:
        return resolve_config(user)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def resolve_config(user: dict[str, Any]) -> dict[str, Any]:
    """Merge a user config over `DEFAULTS` and validate the result (no file involved)."""
    config = _merge(DEFAULTS, user, prefix="")
    _validate(config, user)
    return config


def _merge(defaults: dict, user: dict, prefix: str) -> dict:
    """Deep-merge `user` over `defaults`; unknown keys and wrong types are errors."""
    merged = copy.deepcopy(defaults)
    for key, value in user.items():
        where = f"{prefix}{key}"
        if key not in defaults:
            raise UserError(f"unknown key '{where}' (valid keys: {', '.join(sorted(defaults))})")
        default = defaults[key]
        if key in _NULLABLE and prefix == "":
            merged[key] = _check_encoder(value)
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise UserError(f"key '{where}' must be an object, got {type(value).__name__}")
            merged[key] = _merge(default, value, prefix=f"{where}.")
        else:
            merged[key] = _coerce(where, default, value)
    return merged


def _coerce(where: str, default: Any, value: Any) -> Any:
    """Check that `value` has the type of its default (ints are accepted for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UserError(f"key '{where}' must be {type(default).__name__}, got {value!r}")
    return value


def _check_encoder(value: Any) -> dict | None:
    """The original's optional `encoder` object: `type` (default "Unet"; the original's name for
    the decoder), `backbone` (required), `weights` ("imagenet", the default as in
    `segmentation_models`; null; or a file path).
    Names are checked against the registries in `models.check_model_config`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UserError("key 'encoder' must be an object or null")
    unknown = set(value) - _ENCODER_KEYS
    if unknown:
        raise UserError(
            f"unknown key 'encoder.{sorted(unknown)[0]}' "
            f"(valid keys: {', '.join(sorted(_ENCODER_KEYS))})"
        )
    if "backbone" not in value:
        raise UserError("key 'encoder.backbone' is required (e.g. \"resnet34\")")
    encoder = {"type": "Unet", "weights": "imagenet", **value}
    for key in ("type", "backbone"):
        if not isinstance(encoder[key], str):
            raise UserError(f"key 'encoder.{key}' must be str, got {encoder[key]!r}")
    if encoder["weights"] is not None and not isinstance(encoder["weights"], str):
        raise UserError(
            "key 'encoder.weights' must be \"imagenet\", null or a weights file path, "
            f"got {encoder['weights']!r}"
        )
    return encoder


def _validate(config: dict[str, Any], user: dict[str, Any]) -> None:
    """Range and name checks that a type check cannot do; `user` (the keys as written) lets the
    model check refuse keys the user set that do not apply to the chosen model."""
    from . import losses, models, training  # registries; imported late to keep this module light

    try:
        config["name"] % config["version"] if "%" in config["name"] else config["name"]
    except (TypeError, ValueError):
        raise UserError(f"key 'name' ({config['name']!r}) must hold at most one %s") from None
    _require(config["crossvalidation"]["folds"] >= 1, "crossvalidation.folds", "must be >= 1")
    split = config["crossvalidation"]["validation_split"]
    _require(0 < split < 1, "crossvalidation.validation_split", "must be between 0 and 1")
    _require(config["input"]["size"] >= 32, "input.size", "must be >= 32")
    _require(config["input"]["channels"] in (1, 3), "input.channels", "must be 1 or 3")
    _require(
        not (
            config["input"]["coord_channels"]
            and config["input"]["channels"] == 3
            and config["encoder"]
        ),
        "input.coord_channels",
        "needs input.channels 1 with an encoder (image, depth, image x depth fill its 3 channels)",
    )
    _require(0 <= config["model"]["dropout"] < 1, "model.dropout", "must be in [0, 1)")
    _require(1 <= config["model"]["depth"] <= 6, "model.depth", "must be 1..6")
    _require(config["model"]["start_filters"] >= 1, "model.start_filters", "must be >= 1")
    _require_name(config["model"]["precision"], "model.precision", PRECISIONS)
    for stage in ("stage1", "stage2"):
        _validate_stage(config[stage], stage, losses.LOSSES, training.OPTIMIZERS)
    _require(config["predict"]["batch_size"] >= 1, "predict.batch_size", "must be >= 1")
    _require(
        _thresholds_ok(config["predict"]["thresholds"]),
        "predict.thresholds",
        "must be [low, high, count] with 0 < low <= high < 1 and an int count >= 1",
    )
    models.check_model_config(config, user)


def _validate_stage(stage: dict, where: str, loss_names: dict, optimizer_names: dict) -> None:
    """Checks for one training stage's keys."""
    _require(stage["epochs"] >= 0, f"{where}.epochs", "must be >= 0")
    _require(stage["batch_size"] >= 1, f"{where}.batch_size", "must be >= 1")
    _require(stage["learning_rate"] > 0, f"{where}.learning_rate", "must be > 0")
    _require(0 < stage["reduce_lr_factor"] < 1, f"{where}.reduce_lr_factor", "must be in (0, 1)")
    _require(stage["min_lr"] >= 0, f"{where}.min_lr", "must be >= 0")
    for key in ("early_stopping_patience", "reduce_lr_patience", "epochs_weights_frozen"):
        _require(stage.get(key, 0) >= 0, f"{where}.{key}", "must be >= 0")
    _require_name(stage["schedule"], f"{where}.schedule", SCHEDULES)
    _require(
        1 <= stage["cycles"] <= max(stage["epochs"], 1), f"{where}.cycles", "must be 1..epochs"
    )
    _require_name(stage["loss"], f"{where}.loss", loss_names)
    _require_name(stage["optimizer"], f"{where}.optimizer", optimizer_names)


def _thresholds_ok(value: list) -> bool:
    """`[low, high, count]`: two numbers with 0 < low <= high < 1 and an int count >= 1."""
    if len(value) != 3 or any(isinstance(v, bool) for v in value):
        return False
    lo, hi, n = value
    numbers = all(isinstance(v, int | float) for v in (lo, hi))
    return numbers and isinstance(n, int) and n >= 1 and 0 < lo <= hi < 1


def _require(ok: bool, key: str, what: str) -> None:
    if not ok:
        raise UserError(f"key '{key}' {what}")


def _require_name(name: str, key: str, registry: dict) -> None:
    if name not in registry:
        raise UserError(
            f"key '{key}': unknown name {name!r} (known: {', '.join(sorted(registry))})"
        )


def save_config(config: dict[str, Any], path: str | Path) -> None:
    """Save the resolved config beside a fold's outputs, atomically."""
    from .atomic import write_text

    write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def config_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first key whose saved value differs from the current config's, as `key: old -> new`;
    None when none does. Keys the saved config lacks (defaults added later) are not compared."""
    for key, old in saved.items():
        new = current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found = config_difference(old, new, f"{prefix}{key}.")
            if found is not None:
                return found
        elif old != new:
            return f"{prefix}{key}: {old!r} -> {new!r}"
    return None
