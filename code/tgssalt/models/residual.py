"""The original project's from-scratch U-Net with residual blocks (`model.type` "unet_resnet"),
as one encoder and its decoder for the model factory.

Encoder and decoder levels each hold two pre-activation residual blocks; filters double per level
from `model.start_filters`, `model.depth` levels deep, with `model.dropout` after every pooling
(half of it after the first) and before every decoder level. The factory pads the input to a
multiple of 2**depth (`encoder_stride`) and crops the logits back, so 101x101 in gives 101x101
out; its logits conv is 1x1, as the original's.
"""

from keras import layers

from ..config import ModelConfig
from .blocks import batch_norm, conv_bn_relu, scse


def residual_block(x, filters: int):
    """Pre-activation residual block: BN-ReLU-conv-BN-ReLU-conv plus identity."""
    y = layers.ReLU()(batch_norm()(x))
    y = conv_bn_relu(y, filters)
    y = layers.Conv2D(filters, 3, padding="same")(y)
    return layers.Add()([x, y])


def _level(x, filters: int):
    """One U-Net level: a projecting conv then two residual blocks, ending in ReLU."""
    x = layers.Conv2D(filters, 3, padding="same")(x)
    x = residual_block(x, filters)
    x = residual_block(x, filters)
    return layers.ReLU()(x)


def encoder_stride(options: ModelConfig) -> int:
    """The encoder's total downsampling: each of `depth` levels halves the size."""
    return 2**options.depth


def encode(x, options: ModelConfig) -> tuple[list, tuple]:
    """The encoder: `depth` levels, each followed by max pooling and dropout, then the
    bottleneck level. Returns the levels and the bottleneck (shallow to deep) and their strides."""
    features = []
    for level in range(options.depth):
        x = _level(x, options.start_filters * 2**level)
        features.append(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(options.dropout / 2 if level == 0 else options.dropout)(x)
    features.append(_level(x, options.start_filters * 2**options.depth))
    return features, tuple(2**level for level in range(options.depth + 1))


def decode(features, strides, size: int, options: ModelConfig):
    """The decoder: transposed-conv upsampling, the skip concatenated, dropout, one level (and
    scSE with `model.scse`); returns the full-size features and the coarser levels, deepest
    first. `strides` and `size` follow from `features` here (the decoder signature's)."""
    del strides, size
    x, levels = features[-1], []
    for level in reversed(range(len(features) - 1)):
        filters = options.start_filters * 2**level
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, features[level]])
        x = layers.Dropout(options.dropout)(x)
        x = _level(x, filters)
        x = scse(x) if options.scse else x
        levels.append(x)
    return x, levels[:-1]
