"""Which model a config may ask for: known names, and no key that would silently do nothing.

`config.resolve_config` calls `check_model_config` with the merged config and the user's own
keys; an error is one line naming the key, as for an unknown key.
"""

from ..config import DEFAULTS
from ..errors import UserError
from .factory import architecture

# `model` keys that a config with an `encoder` cannot use, and why
NOT_WITH_ENCODER = {
    "type": "encoder.type names the decoder and encoder.backbone the encoder",
    "depth": "a pretrained backbone fixes its own depth (stride 32)",
    "dropout": "the decoders on a pretrained backbone have no dropout",
}


def check_model_config(config: dict, user: dict | None = None) -> None:
    """Fail early, naming the valid options, when `config` asks for a model this build lacks
    or `user` (the keys the user wrote; None: none) sets a key that does not apply to it.

    A key set to its default value passes: a fold's saved, fully resolved config must load back.
    With an `encoder`, `model.start_filters` is the decoder's width and `encoder.type` (the
    original project's name) picks the decoder.
    """
    architecture(config)  # unknown names fail here; nothing is built yet
    model = (user or {}).get("model") or {}
    if config.get("encoder") is not None:
        for key, why in NOT_WITH_ENCODER.items():
            if key in model and model[key] != DEFAULTS["model"][key]:
                raise UserError(f"key 'model.{key}' does not apply with an 'encoder': {why}")
    elif config["stage1"]["epochs_weights_frozen"] > 0:
        raise UserError(
            "key 'stage1.epochs_weights_frozen' needs an 'encoder': it freezes a pretrained "
            f"encoder, and model.type {config['model']['type']!r} has none"
        )
