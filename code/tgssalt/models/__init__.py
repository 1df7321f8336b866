"""Segmentation models: one factory (`factory.build_model`) assembles every model from registered
parts; `with_sigmoid` wraps a logits model for export and inference.

Module map (one job each):
- `factory`: the assembly (adapter -> pad -> encoder -> decoder -> crop -> heads) and `MODELS`
- `inputs`: the input adapter (coordinate channels, grey -> RGB, ImageNet preprocessing)
- `encoders`: `BACKBONES`, the pretrained backbones (`encoder.backbone`)
- `resnets`: ResNet-34 / ResNeXt-50 in Keras with timm checkpoint loading
- `residual`: the original's from-scratch residual U-Net encoder and decoder (`model.type`)
- `decoders`: `DECODERS`, the decoders on a backbone (`encoder.type`)
- `blocks`: shared layers: conv-BN-ReLU, BN momentum, scSE, resizing, pad/crop, hypercolumn
- `heads`: the logits output and the only code that knows the deep-supervision packing
- `layers`: the custom layers a saved model may hold (coordinate and cumsum channels, gated
  probability)
"""

import keras
from keras import layers as keras_layers

from .decoders import DECODERS
from .encoders import BACKBONES
from .factory import MODELS, build_model, check_model_config
from .heads import is_packed
from .layers import SaltHeadProbabilities

__all__ = ["BACKBONES", "DECODERS", "MODELS", "build_model", "check_model_config", "with_sigmoid"]


def with_sigmoid(model: keras.Model) -> keras.Model:
    """Wrap a logits model into one that outputs salt probabilities, for export and inference:
    the sigmoid (H, W, 1), or with packed heads the mask's and the empty head's (H, W, 2), which
    `inference.predict_probs` gates after averaging."""
    if is_packed(model):
        probs = SaltHeadProbabilities(name="salt_probability", dtype="float32")(model.output)
    else:
        probs = keras_layers.Activation("sigmoid", name="salt_probability", dtype="float32")(
            model.output
        )
    return keras.Model(model.input, probs, name=f"{model.name}_probability")
