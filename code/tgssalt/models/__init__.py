"""Model registry: `MODELS` maps a `model.type` name to its builder; adding a model is one entry.

Every builder takes `(input_shape, **config["model"], coord_channels=...)` and returns a Keras
model that outputs logits of shape (H, W, 1) for an (H, W, C) input, float32, from a last layer
named "logits" (H, W, 1 + heads with `model.deep_supervision`: see `heads.py`).
A config with an `encoder` object (the original's pretrained-encoder configs) builds
`segmentation.build_encoder_model` instead: `encoder.type` picks the decoder (`DECODERS`),
`encoder.backbone` the backbone (`BACKBONES`) and `encoder.weights` its initial weights.
"""

import keras

from ..errors import UserError
from .decoders import DECODERS
from .encoders import BACKBONES
from .heads import probability_output
from .segmentation import build_encoder_model
from .unet_resnet import build_unet_resnet

MODELS = {
    "unet_resnet": build_unet_resnet,
}


def check_model_config(config: dict) -> None:
    """Fail early, naming the valid options, when a config asks for a model this build lacks."""
    if config["model"]["type"] not in MODELS:
        raise UserError(
            f"key 'model.type': unknown model {config['model']['type']!r} "
            f"(known: {', '.join(sorted(MODELS))})"
        )
    encoder = config.get("encoder")
    if encoder is None:
        return
    for key, registry in (("type", DECODERS), ("backbone", BACKBONES)):
        if encoder[key] not in registry:
            raise UserError(
                f"key 'encoder.{key}': unknown name {encoder[key]!r} "
                f"(known: {', '.join(sorted(registry))})"
            )


def build_model(config: dict) -> keras.Model:
    """Build the configured model for `input.size` x `input.size` x `input.channels` images."""
    check_model_config(config)
    keras.mixed_precision.set_dtype_policy(config["model"]["precision"])
    size, channels = config["input"]["size"], config["input"]["channels"]
    params = {k: v for k, v in config["model"].items() if k not in ("type", "precision")}
    params["coord_channels"] = config["input"]["coord_channels"]
    if config.get("encoder") is not None:
        pixel_max = 1.0 if config["input"]["normalize"] else 255.0
        return build_encoder_model((size, size, channels), config["encoder"], pixel_max, **params)
    return MODELS[config["model"]["type"]]((size, size, channels), **params)


def with_sigmoid(model: keras.Model) -> keras.Model:
    """Wrap a logits model into one that outputs salt probabilities, for export and inference
    (gated by the empty-mask head of a deep-supervised model, see `heads.py`)."""
    probs = probability_output(model)
    return keras.Model(model.input, probs, name=f"{model.name}_probability")
