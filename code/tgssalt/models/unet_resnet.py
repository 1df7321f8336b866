"""The original project's U-Net with residual blocks, trained from scratch, in Keras 3.

Encoder and decoder levels each hold two pre-activation residual blocks; filters double per level
from `start_filters`. Any input size works: the input is zero-padded up to a multiple of
`2**depth` and the logits are cropped back, so 101x101 in gives 101x101 out. Apart from the optional
`layers.CoordChannels` and the deep-supervision gate, only stock Keras layers are used.
"""

import keras
from keras import layers

from .decoders import scse as scse_block
from .heads import packed_logits
from .layers import CoordChannels

# Keras' default 0.99 leaves the moving statistics far from the batch statistics after the few
# hundred steps of a small fold, which made validation predictions collapse to all-empty.
BN_MOMENTUM = 0.9


def _conv_bn(x, filters: int, activation: bool = True):
    """3x3 convolution, batch norm and (optionally) ReLU."""
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.ReLU()(x) if activation else x


def residual_block(x, filters: int):
    """Pre-activation residual block: BN-ReLU-conv-BN-ReLU-conv plus identity."""
    shortcut = x
    y = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    y = layers.ReLU()(y)
    y = _conv_bn(y, filters)
    y = layers.Conv2D(filters, 3, padding="same")(y)
    return layers.Add()([shortcut, y])


def _level(x, filters: int):
    """One U-Net level: a projecting conv then two residual blocks, ending in ReLU."""
    x = layers.Conv2D(filters, 3, padding="same")(x)
    x = residual_block(x, filters)
    x = residual_block(x, filters)
    return layers.ReLU()(x)


def _padding(size: int, depth: int) -> tuple[int, int]:
    """Zero padding (before, after) that makes `size` divisible by 2**depth."""
    step = 2**depth
    total = -size % step
    return total // 2, total - total // 2


def build_unet_resnet(
    input_shape,
    start_filters=16,
    depth=4,
    dropout=0.5,
    scse=False,
    hypercolumn=False,
    deep_supervision=False,
    coord_channels=False,
    **_,
):
    """Build the U-Net; returns a `keras.Model` mapping (H, W, C) images to (H, W, 1) logits.

    `scse` adds an scSE attention block after each decoder level; `hypercolumn` concatenates
    every decoder level, upsampled to full size, before the logits (see decoders.py);
    `coord_channels` appends depth channels to the input (`layers.CoordChannels`);
    `deep_supervision` packs per-level and empty-mask heads behind the logits (`heads.py`).
    """
    inputs = keras.Input(input_shape, name="image")
    x = CoordChannels(name="coord_channels")(inputs) if coord_channels else inputs
    pad_h, pad_w = _padding(input_shape[0], depth), _padding(input_shape[1], depth)
    x = layers.ZeroPadding2D((pad_h, pad_w))(x)
    skips = []
    for level in range(depth):
        x = _level(x, start_filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(dropout / 2 if level == 0 else dropout)(x)
    bottleneck = _level(x, start_filters * 2**depth)
    x, levels = _decode(bottleneck, skips, start_filters, dropout, scse)
    if hypercolumn:
        columns = [layers.UpSampling2D(f, interpolation="bilinear")(v) for f, v in levels]
        x = layers.Concatenate()([*columns, x])
    x = layers.Cropping2D((pad_h, pad_w))(x)
    if not deep_supervision:
        logits = layers.Conv2D(1, 1, name="logits", dtype="float32")(x)
        return keras.Model(inputs, logits, name="unet_resnet")
    mask = layers.Conv2D(1, 1, name="mask_logits", dtype="float32")(x)
    padded = x.shape[1] + sum(pad_h)
    coarse = [v for _, v in levels]
    logits = packed_logits(mask, coarse, bottleneck, padded, (pad_h, pad_w))
    return keras.Model(inputs, logits, name="unet_resnet")


def _decode(x, skips: list, start_filters: int, dropout: float, scse: bool):
    """The decoder: upsample, concatenate the skip, one level; returns the full-size features
    and the coarser levels as (upsampling factor to full size, features), deepest first."""
    levels = []
    for level in reversed(range(len(skips))):
        filters = start_filters * 2**level
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = layers.Dropout(dropout)(x)
        x = _level(x, filters)
        x = scse_block(x) if scse else x
        if level > 0:
            levels.append((2**level, x))
    return x, levels
