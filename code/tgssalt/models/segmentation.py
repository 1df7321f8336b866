"""U-Net / FPN / Linknet on a (pretrained) backbone: the original's `encoder` configs in Keras 3.

The model maps (H, W, C) images, scaled as `pipeline.preprocess` scales them (to [0, 1], or
0..255 with `input.normalize` off), to (H, W, 1) logits like `build_unet_resnet`:

1. grayscale (C = 1) is replicated to the three channels ImageNet encoders expect;
2. the backbone's own ImageNet preprocessing is applied (`encoders.PREPROCESSING`);
3. the input is zero-padded to a multiple of the encoder's stride 32 and the features are cropped
   back at the end, so any `input.size` works (101 px, the original's 224 px);
4. the backbone runs as a nested model named "encoder" (frozen by `stage1.epochs_weights_frozen`
   through `training.set_encoder_trainable`), then the decoder, then the float32 "logits" layer.
"""

import keras
import numpy as np
from keras import layers

from . import decoders, encoders


def _to_encoder_input(inputs, backbone: str, pixel_max: float):
    """Replicate grayscale to RGB and apply the backbone's preprocessing with stock layers."""
    x = inputs
    if inputs.shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([inputs] * 3)
    scale, offset, bgr = encoders.PREPROCESSING[encoders.BACKBONES[backbone].preprocess]
    if bgr and inputs.shape[-1] == 3:  # grey replicated is the same in either channel order
        flip = layers.Conv2D(3, 1, use_bias=False, trainable=False, name="preprocess_rgb_to_bgr")
        x = flip(x)
        flip.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)])
    scale = [s / pixel_max for s in scale]
    return layers.Rescaling(scale, offset, name="preprocess")(x)


def _pad(x, size: int, padded: int):
    """Zero-pad a size x size map to padded x padded, split around the centre."""
    before = (padded - size) // 2
    return layers.ZeroPadding2D(((before, padded - size - before),) * 2)(x), before


def build_encoder_model(
    input_shape,
    encoder: dict,
    pixel_max: float = 1.0,
    start_filters: int = 16,
    scse: bool = False,
    hypercolumn: bool = False,
    **_,
) -> keras.Model:
    """Build `encoder["type"]` on `encoder["backbone"]`; returns an (H, W, C) -> logits model."""
    name, size = encoder["backbone"], input_shape[0]
    inputs = keras.Input(input_shape, name="image")
    padded = encoders.padded_size(name, size)
    x = _to_encoder_input(inputs, name, pixel_max)
    x, before = _pad(x, size, padded)
    backbone, strides = encoders.build_encoder(name, padded, encoder.get("weights"))
    features = backbone(x)
    decode = decoders.DECODERS[encoder["type"]]
    x = decode(features, strides, padded, start_filters, scse, hypercolumn)
    x = layers.Cropping2D(((before, padded - size - before),) * 2)(x)
    logits = layers.Conv2D(1, 3, padding="same", name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=f"{encoder['type'].lower()}_{name}")
