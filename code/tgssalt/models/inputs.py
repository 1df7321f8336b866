"""The input adapter: from the images `pipeline.preprocess` yields to what the encoder expects.

Images arrive scaled to [0, 1] (or 0..255 with `input.normalize` off), with `input.channels`
channels. The from-scratch U-Net takes them as they are; an ImageNet backbone wants three
channels in its own scaling. `input.coord_channels` appends the row depth and image x depth
(`layers.CoordChannels`) for either; `input.cumsum_channel` appends the image's running sum down
each column (`layers.CumsumChannel`) for the from-scratch U-Net.
"""

import numpy as np
from keras import layers

from .encoders import PREPROCESSING
from .layers import CoordChannels, CumsumChannel


def adapt_input(
    inputs,
    coord_channels: bool,
    preprocess: str | None,
    pixel_max: float = 1.0,
    cumsum_channel: bool = False,
):
    """The adapted input: coordinate and cumsum channels if asked; then, for an ImageNet
    backbone (`preprocess` a key of `encoders.PREPROCESSING`), three channels in its scaling
    (the config refuses a cumsum channel with a backbone).

    Grayscale is replicated to RGB; with `coord_channels` the three channels are instead the
    image, its row depth and their product, as the 2018 kernels fed pretrained encoders (a
    3-channel input with coordinate channels and an encoder is refused by the config).
    """
    x = CoordChannels(name="coord_channels")(inputs) if coord_channels else inputs
    x = CumsumChannel(name="cumsum_channel")(x) if cumsum_channel else x
    if preprocess is None:
        return x
    if not coord_channels and inputs.shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([inputs] * 3)
    return _preprocess(x, preprocess, rgb_input=inputs.shape[-1] == 3, pixel_max=pixel_max)


def _preprocess(x, preprocess: str, rgb_input: bool, pixel_max: float):
    """The backbone's ImageNet preprocessing as layers: channel order (caffe-style backbones
    want BGR; only real RGB input needs flipping) and per-channel scale and offset."""
    scale, offset, bgr = PREPROCESSING[preprocess]
    if bgr and rgb_input:
        flip = layers.Conv2D(3, 1, use_bias=False, trainable=False, name="preprocess_rgb_to_bgr")
        x = flip(x)
        flip.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)])
    scale = [s / pixel_max for s in scale]
    return layers.Rescaling(scale, offset, name="preprocess")(x)
