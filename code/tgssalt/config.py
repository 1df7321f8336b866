"""Training configs: JSON merged over `DEFAULTS`, validated and typed in one place.

The original project's schema (`version`, `name`, `crossvalidation`, `input`, `stage1`, `stage2`,
`encoder`) loads unchanged; every other key is optional (docs/configuration.md lists them all).
`load_config` returns a frozen `Config` of typed sections (`config.input.size`,
`config.stage("stage1").loss`). A wrong key, type or name, or a key that does not apply to the
chosen model or schedule, fails with a one-line `UserError` naming the file and the key.
"""

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .competition import IMAGE_SIZE
from .errors import UserError
from .metrics import THRESHOLD_GRID

STAGE_NAMES = ("stage1", "stage2")  # the training stages in order: config sections, artifacts
SCHEDULES = ("plateau", "cosine")  # ReduceLROnPlateau + EarlyStopping, or cosine cycles
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # Keras dtype policies
INPUT_MODES = ("resize", "pad")  # 101 px images to `input.size`: interpolated or padded
PAD_MODES = ("reflect", "edge", "zero")  # `input.pad_mode`: the borders `input.mode` "pad" adds


@dataclass(frozen=True)
class CrossValidationConfig:
    folds: int = 4
    validation_split: float = 0.2
    split_seed: int = 5678


@dataclass(frozen=True)
class InputConfig:
    size: int = IMAGE_SIZE
    channels: int = 1
    normalize: bool = True
    coord_channels: bool = False
    cumsum_channel: bool = False
    mode: str = "resize"
    pad_mode: str = "reflect"


@dataclass(frozen=True)
class ModelConfig:
    type: str = "unet_resnet"
    start_filters: int = 16
    depth: int = 4
    dropout: float = 0.5
    precision: str = "float32"
    scse: bool = False
    hypercolumn: bool = False
    deep_supervision: bool = False


@dataclass(frozen=True)
class EncoderConfig:
    """The original's pretrained-encoder object; its `type` names the decoder (Unet, FPN, ...)."""

    backbone: str
    type: str = "Unet"
    weights: str | None = "imagenet"


@dataclass(frozen=True)
class AugmentationConfig:
    hflip: bool = True
    brightness: float = 0.0
    contrast: float = 0.0
    shift: float = 0.0
    scale: float = 0.0
    rotate: float = 0.0
    pad_crop: int = 0


@dataclass(frozen=True)
class StageConfig:
    epochs: int = 20
    batch_size: int = 16
    loss: str = "bce"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    early_stopping_patience: int = 10
    reduce_lr_patience: int = 4
    reduce_lr_factor: float = 0.5
    min_lr: float = 1e-5
    schedule: str = "plateau"
    cycles: int = 1
    epochs_weights_frozen: int = 0
    warmup_epochs: int = 0
    clipnorm: float = 0.0
    ema_momentum: float = 0.0
    swa_epochs: int = 0
    empty_mask_weight: float = 1.0


def _stage2() -> StageConfig:
    return StageConfig(
        epochs=50,
        loss="lovasz_hinge",
        learning_rate=5e-4,
        early_stopping_patience=16,
        reduce_lr_patience=6,
    )


@dataclass(frozen=True)
class TtaConfig:
    hflip: bool = True


@dataclass(frozen=True)
class PredictConfig:
    batch_size: int = 64
    thresholds: tuple[float, float, int] = THRESHOLD_GRID


@dataclass(frozen=True)
class DataConfig:
    """What a fold trains on beyond the labelled images: `pseudo_labels` names a pseudo-label
    set (`pseudo_labels.py`, "" for none) whose test images and masks join the training part;
    `small_salt_repeats` is how often each training image of coverage class 1 (salt on more
    than 0 and at most 10% of it) appears per epoch."""

    pseudo_labels: str = ""
    small_salt_repeats: int = 1


@dataclass(frozen=True)
class InitConfig:
    """Start each fold's model from another config's trained model of the same fold: `name` and
    `version` are that config's (its runs are `name % version`), `stage` which of its stage
    models; `name` "" starts from scratch (`init_from.py`)."""

    name: str = ""
    version: int = 1
    stage: str = "stage1"


@dataclass(frozen=True)
class Config:
    """A resolved training config. `user_keys` are the dotted keys the config file set."""

    version: int = 1
    name: str = "unet-resnet-%s"
    seed: int = 5678
    crossvalidation: CrossValidationConfig = field(default_factory=CrossValidationConfig)
    input: InputConfig = field(default_factory=InputConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    encoder: EncoderConfig | None = None
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=_stage2)
    tta: TtaConfig = field(default_factory=TtaConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    data: DataConfig = field(default_factory=DataConfig)
    init: InitConfig = field(default_factory=InitConfig)
    user_keys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form saved beside a fold's outputs and logged to MLflow."""
        data = dataclasses.asdict(self)
        del data["user_keys"]
        data["predict"]["thresholds"] = list(data["predict"]["thresholds"])
        return data


_SECTIONS = {
    "crossvalidation": CrossValidationConfig,
    "input": InputConfig,
    "model": ModelConfig,
    "augmentation": AugmentationConfig,
    "stage1": StageConfig,
    "stage2": StageConfig,
    "tta": TtaConfig,
    "predict": PredictConfig,
    "data": DataConfig,
    "init": InitConfig,
}
_ENCODER_KEYS = {"type", "backbone", "weights"}
DEFAULTS: dict[str, Any] = Config().to_dict()


def load_config(path: str | Path) -> Config:
    """Read a JSON config, merge it over `DEFAULTS`, validate and type it."""
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


def resolve_config(user: dict[str, Any]) -> Config:
    """Merge a user config (a dict as in a JSON file) over `DEFAULTS`, validate and type it."""
    merged = _merge(DEFAULTS, user, prefix="")
    config = Config(
        **{k: _section(k, v) for k, v in merged.items()}, user_keys=frozenset(_dotted(user))
    )
    _validate(config)
    return config


def override(config: Config, changes: dict[str, Any]) -> Config:
    """`config` with `changes` (a nested dict, as in a config file) applied on top, re-validated;
    the changed keys count as set by the user."""
    user = _nested(config.user_keys, config.to_dict())
    return resolve_config(_deep_update(user, changes))


def _section(key: str, value: Any) -> Any:
    if key == "encoder":
        return None if value is None else EncoderConfig(**value)
    if key == "predict":
        return PredictConfig(**{**value, "thresholds": tuple(value["thresholds"])})
    return _SECTIONS[key](**value) if key in _SECTIONS else value


def _dotted(user: dict, prefix: str = "") -> list[str]:
    """The dotted keys a user dict sets: {"model": {"depth": 3}} -> ["model.depth"]."""
    keys = []
    for key, value in user.items():
        if isinstance(value, dict) and key != "encoder":
            keys.extend(_dotted(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _nested(keys: frozenset[str], values: dict) -> dict:
    """The user dict that sets exactly `keys` to their values in `values` (inverse of _dotted)."""
    user: dict = {}
    for key in keys:
        *sections, last = key.split(".")
        source, target = values, user
        for section in sections:
            source, target = source[section], target.setdefault(section, {})
        target[last] = source[last]
    return user


def _deep_update(base: dict, changes: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "encoder":
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge(defaults: dict, user: dict, prefix: str) -> dict:
    """Deep-merge `user` over `defaults`; unknown keys and wrong types are errors."""
    merged = copy.deepcopy(defaults)
    for key, value in user.items():
        where = f"{prefix}{key}"
        if key not in defaults:
            raise UserError(f"unknown key '{where}' (valid keys: {', '.join(sorted(defaults))})")
        default = defaults[key]
        if key == "encoder" and prefix == "":
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
    """The original's optional `encoder` object: `type` (default "Unet"), `backbone` (required),
    `weights` ("imagenet", the default as in `segmentation_models`; null; or a file path).
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


def _validate(config: Config) -> None:
    """Range and name checks that a type check cannot do."""
    from . import losses, models, training  # registries; imported late to keep this module light

    _formatted_name(config.name, config.version, "name")
    _require(config.crossvalidation.folds >= 1, "crossvalidation.folds", "must be >= 1")
    split = config.crossvalidation.validation_split
    _require(0 < split < 1, "crossvalidation.validation_split", "must be between 0 and 1")
    _validate_input(config)
    _validate_augmentation(config)
    _require(0 <= config.model.dropout < 1, "model.dropout", "must be in [0, 1)")
    _require(1 <= config.model.depth <= 6, "model.depth", "must be 1..6")
    _require(config.model.start_filters >= 1, "model.start_filters", "must be >= 1")
    _require_name(config.model.precision, "model.precision", PRECISIONS)
    for name in STAGE_NAMES:
        _validate_stage(config, name, losses.LOSSES, training.OPTIMIZERS)
    _require(config.predict.batch_size >= 1, "predict.batch_size", "must be >= 1")
    _require(
        _thresholds_ok(config.predict.thresholds),
        "predict.thresholds",
        "must be [low, high, count] with 0 < low <= high < 1 and an int count >= 1",
    )
    _validate_data(config)
    _validate_init(config)
    _refuse_inapplicable(config)
    models.check_model_config(config)


def _validate_data(config: Config) -> None:
    """`data.small_salt_repeats` >= 1; `data.pseudo_labels`: "" or a set name
    `<run>-pseudo<round>` (round >= 1), a plain file name; whether the set exists is checked when
    a fold starts (it lives in the outputs folder)."""
    from .layout import parse_round_run  # layout imports this module

    _require(config.data.small_salt_repeats >= 1, "data.small_salt_repeats", "must be >= 1")
    name = config.data.pseudo_labels
    _require(
        not name or (_plain_file_name(name) and parse_round_run(name)[1] >= 1),
        "data.pseudo_labels",
        f"must name a pseudo-label set '<run>-pseudo<round>' (code/pseudo_label.py), got {name!r}",
    )


def _validate_init(config: Config) -> None:
    """`init.name`: "" or a config name (at most one %s) that makes a plain file name."""
    name = config.init.name
    run = _formatted_name(name, config.init.version, "init.name")
    plain = _plain_file_name(run)
    _require(plain, "init.name", f"must be a config name like 'best-%s', got {name!r}")
    _require_name(config.init.stage, "init.stage", STAGE_NAMES)


def _formatted_name(name: str, version: int, key: str) -> str:
    """`name % version` (`name` itself without `%`); an error naming `key` when it does not
    format."""
    try:
        return name % version if "%" in name else name
    except (TypeError, ValueError):
        raise UserError(f"key '{key}' ({name!r}) must hold at most one %s") from None


def _plain_file_name(name: str) -> bool:
    """Whether `name` can be a file name inside the outputs folder: no separator, no dot first."""
    return not any(c in name for c in "/\\") and not name.startswith(".")


def _validate_input(config: Config) -> None:
    _require(config.input.size >= 32, "input.size", "must be >= 32")
    _require_name(config.input.mode, "input.mode", INPUT_MODES)
    _require_name(config.input.pad_mode, "input.pad_mode", PAD_MODES)
    _require(
        config.input.mode != "pad" or config.input.size >= IMAGE_SIZE,
        "input.size",
        f"must be >= {IMAGE_SIZE} with input.mode 'pad' (it pads the {IMAGE_SIZE} px images; got "
        f"{config.input.size}; use input.mode 'resize' to shrink them)",
    )
    _require(config.input.channels in (1, 3), "input.channels", "must be 1 or 3")
    _require(
        not (config.input.coord_channels and config.input.channels == 3 and config.encoder),
        "input.coord_channels",
        "needs input.channels 1 with an encoder (image, depth, image x depth fill its 3 channels)",
    )
    _require(
        not (config.input.cumsum_channel and config.encoder),
        "input.cumsum_channel",
        "is for the from-scratch models; an encoder's pretrained stem takes 3 channels",
    )


def _validate_augmentation(config: Config) -> None:
    """Ranges of the geometric augmentation keys (0 turns each off)."""
    aug = config.augmentation
    _require(0 <= aug.shift <= 0.5, "augmentation.shift", "must be in [0, 0.5] (of the side)")
    _require(0 <= aug.scale < 1, "augmentation.scale", "must be in [0, 1)")
    _require(0 <= aug.rotate <= 180, "augmentation.rotate", "must be in [0, 180] degrees")
    _require(
        0 <= aug.pad_crop < config.input.size,
        "augmentation.pad_crop",
        f"must be in [0, input.size) pixels, here [0, {config.input.size})",
    )


def _validate_stage(config: Config, where: str, loss_names, optimizer_names) -> None:
    """Checks for one training stage's keys."""
    stage = config.stage(where)
    _require(stage.epochs >= 0, f"{where}.epochs", "must be >= 0")
    _require(stage.batch_size >= 1, f"{where}.batch_size", "must be >= 1")
    _require(stage.learning_rate > 0, f"{where}.learning_rate", "must be > 0")
    _require(0 < stage.reduce_lr_factor < 1, f"{where}.reduce_lr_factor", "must be in (0, 1)")
    _require(stage.min_lr >= 0, f"{where}.min_lr", "must be >= 0")
    for key in ("early_stopping_patience", "reduce_lr_patience", "epochs_weights_frozen"):
        _require(getattr(stage, key) >= 0, f"{where}.{key}", "must be >= 0")
    for key in ("warmup_epochs", "swa_epochs"):
        _require(0 <= getattr(stage, key) <= stage.epochs, f"{where}.{key}", "must be 0..epochs")
    _require(stage.clipnorm >= 0, f"{where}.clipnorm", "must be >= 0 (0: no clipping)")
    _require(0 <= stage.ema_momentum < 1, f"{where}.ema_momentum", "must be in [0, 1) (0: off)")
    _require(0 <= stage.empty_mask_weight <= 1, f"{where}.empty_mask_weight", "must be in [0, 1]")
    _require_name(stage.schedule, f"{where}.schedule", SCHEDULES)
    _require(1 <= stage.cycles <= max(stage.epochs, 1), f"{where}.cycles", "must be 1..epochs")
    _require_name(stage.loss, f"{where}.loss", loss_names)
    _require_name(stage.optimizer, f"{where}.optimizer", optimizer_names)


_PLATEAU_KEYS = ("early_stopping_patience", "reduce_lr_patience", "reduce_lr_factor")
_NOT_WITH_ENCODER = {
    "type": "encoder.type names the decoder and encoder.backbone the encoder",
    "depth": "a pretrained backbone fixes its own depth (stride 32)",
    "dropout": "the decoders on a pretrained backbone have no dropout",
}


def inapplicable_keys(config: Config) -> dict[str, str]:
    """Every dotted key that does nothing in `config`, with the reason."""
    reasons = {}
    if config.input.mode != "pad":
        reasons["input.pad_mode"] = "applies to input.mode 'pad' only, not 'resize'"
    if config.encoder is not None:
        for key, why in _NOT_WITH_ENCODER.items():
            reasons[f"model.{key}"] = f"not with an 'encoder': {why}"
    for name in STAGE_NAMES:
        if config.encoder is None:
            reasons[f"{name}.epochs_weights_frozen"] = (
                "needs an 'encoder': it freezes a pretrained encoder"
            )
        if not config.model.deep_supervision:
            reasons[f"{name}.empty_mask_weight"] = (
                "needs model.deep_supervision: its empty head decides the images without salt"
            )
        if config.stage(name).schedule == "cosine":
            for key in _PLATEAU_KEYS:
                reasons[f"{name}.{key}"] = "applies to schedule 'plateau' only, not 'cosine'"
        else:
            reasons[f"{name}.cycles"] = "applies to schedule 'cosine' only"
        reasons.update(_swa_conflicts(config, name))
    if not config.init.name:
        for key in ("version", "stage"):
            reasons[f"init.{key}"] = "applies with init.name only"
    if config.crossvalidation.folds == 1:
        reasons["data.pseudo_labels"] = "needs crossvalidation.folds >= 2: sets are made per fold"
    return reasons


def _swa_conflicts(config: Config, name: str) -> dict[str, str]:
    """`swa_epochs` does nothing where the stage already exports another weight average."""
    stage = config.stage(name)
    if stage.ema_momentum > 0:
        return {f"{name}.swa_epochs": "not with ema_momentum: use one weight average, not both"}
    if stage.schedule == "cosine" and stage.cycles >= 2:
        return {
            f"{name}.swa_epochs": "not with cosine cycles >= 2: the stage exports the average "
            "of its cycles' snapshots"
        }
    return {}


def _refuse_inapplicable(config: Config) -> None:
    """Refuse a key the config file set to a non-default value that would do nothing. A key set
    to its default passes, so that a fold's saved, fully resolved config loads back."""
    reasons, values = inapplicable_keys(config), config.to_dict()
    for key in sorted(config.user_keys & set(reasons)):
        section, name = key.split(".")
        if values[section][name] != DEFAULTS[section][name]:
            raise UserError(f"key '{key}' does not apply: {reasons[key]}")


def _thresholds_ok(value) -> bool:
    """`[low, high, count]`: two numbers with 0 < low <= high < 1 and an int count >= 1."""
    if len(value) != 3 or any(isinstance(v, bool) for v in value):
        return False
    lo, hi, n = value
    numbers = all(isinstance(v, int | float) for v in (lo, hi))
    return numbers and isinstance(n, int) and n >= 1 and 0 < lo <= hi < 1


def _require(ok: bool, key: str, what: str) -> None:
    if not ok:
        raise UserError(f"key '{key}' {what}")


def _require_name(name: str, key: str, known) -> None:
    if name not in known:
        raise UserError(f"key '{key}': unknown name {name!r} (known: {', '.join(sorted(known))})")


def save_config(config: Config, path: str | Path) -> None:
    """Save the resolved config beside a fold's outputs, atomically."""
    from .atomic import write_text

    write_text(path, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")


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
