"""U-Net / FPN / Linknet on a (pretrained) backbone: the original's `encoder` configs in Keras 3.

The model maps (H, W, C) images, scaled as `pipeline.preprocess` scales them (to [0, 1], or
0..255 with `input.normalize` off), to (H, W, 1) logits like `build_unet_resnet`:

1. grayscale (C = 1) is replicated to the three channels ImageNet encoders expect (or becomes
   image, depth and image x depth with `input.coord_channels`);
2. the backbone's own ImageNet preprocessing is applied (`encoders.PREPROCESSING`);
3. the input is zero-padded to a multiple of the encoder's stride 32 and the features are cropped
   back at the end, so any `input.size` works (101 px, the original's 224 px);
4. the backbone runs as a nested model named "encoder" (frozen by `stage1.epochs_weights_frozen`
   through `training.set_encoder_trainable`), then the decoder, then the float32 "logits" layer
   (which packs the deep-supervision heads with `model.deep_supervision`, see `heads.py`).
"""

import keras
import numpy as np
from keras import layers

from . import decoders, encoders, heads
from .layers import CoordChannels


def _to_encoder_input(inputs, backbone: str, pixel_max: float, coord_channels: bool = False):
    """Make the three channels an ImageNet encoder expects, then apply its preprocessing.

    Grayscale is replicated to RGB; with `coord_channels` the three channels are instead the
    image, its row depth and their product (`layers.CoordChannels`), as the 2018 kernels fed
    pretrained encoders. A 3-channel input with `coord_channels` is refused by the config.
    """
    x = inputs
    if coord_channels:
        x = CoordChannels(name="coord_channels")(inputs)
    elif inputs.shape[-1] == 1:
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
    deep_supervision: bool = False,
    coord_channels: bool = False,
    **_,
) -> keras.Model:
    """Build `encoder["type"]` on `encoder["backbone"]`; returns an (H, W, C) -> logits model."""
    name, size = encoder["backbone"], input_shape[0]
    inputs = keras.Input(input_shape, name="image")
    padded = encoders.padded_size(name, size)
    x = _to_encoder_input(inputs, name, pixel_max, coord_channels)
    x, before = _pad(x, size, padded)
    backbone, strides = encoders.build_encoder(name, padded, encoder.get("weights"))
    features = backbone(x)
    decode = decoders.DECODERS[encoder["type"]]
    x, levels = decode(features, strides, padded, start_filters, scse, hypercolumn)
    crop = ((before, padded - size - before),) * 2
    x = layers.Cropping2D(crop)(x)
    model_name = f"{encoder['type'].lower()}_{name}"
    if not deep_supervision:
        logits = layers.Conv2D(1, 3, padding="same", name="logits", dtype="float32")(x)
        return keras.Model(inputs, logits, name=model_name)
    mask = layers.Conv2D(1, 3, padding="same", name="mask_logits", dtype="float32")(x)
    logits = heads.packed_logits(mask, levels, features[-1], padded, crop)
    return keras.Model(inputs, logits, name=model_name)
