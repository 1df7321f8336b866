"""Decoder registry: `DECODERS` maps `encoder.type` to a decoder; adding one is one entry.

`encoder.type` is the original project's name for what is, in fact, the decoder (it came from
`segmentation_models`' class names): "Unet", "FPN" or "Linknet" on the `encoder.backbone`.

A decoder takes the encoder's feature maps (shallow to deep, the last at stride 32), their
strides, the padded input size and the `ModelConfig`, and returns features at the padded input
resolution for the logits and its coarser levels (deepest first, for deep supervision and the
hypercolumn, which the factory adds). Filter counts scale with `model.start_filters`: the
default 16 gives `segmentation_models`' defaults (U-Net decoder 256-128-64-32-16, FPN pyramid 256
and segmentation 128 channels). The from-scratch U-Net's decoder is `residual.decode`.
"""

from keras import layers

from ..config import ModelConfig
from .blocks import conv_bn_relu, match_size, scse, upsample_to


def _targets(features, strides, size: int) -> list:
    """(spatial size, skip or None) for each 2x step from stride 16 down to stride 1."""
    by_stride = dict(zip(strides[:-1], features[:-1], strict=True))
    steps = []
    for stride in (16, 8, 4, 2, 1):
        skip = by_stride.get(stride)
        steps.append((tuple(skip.shape[1:3]) if skip is not None else (size // stride,) * 2, skip))
    return steps


def unet(features, strides, size: int, options: ModelConfig):
    """U-Net decoder: upsample, concatenate the skip, two 3x3 conv-BN-ReLU; five times."""
    x, levels, width = features[-1], [], options.start_filters
    for (target, skip), mult in zip(
        _targets(features, strides, size), (16, 8, 4, 2, 1), strict=True
    ):
        x = match_size(layers.UpSampling2D(2)(x), target)
        x = x if skip is None else layers.Concatenate()([x, skip])
        x = conv_bn_relu(conv_bn_relu(x, width * mult), width * mult)
        x = scse(x) if options.scse else x
        levels.append(x)
    return x, levels[:-1]


def linknet(features, strides, size: int, options: ModelConfig):
    """LinkNet decoder: 1x1 squeeze, upsample + 3x3, 1x1 expand to the skip's width, add it."""
    x, levels, width = features[-1], [], options.start_filters
    for target, skip in _targets(features, strides, size):
        out = skip.shape[-1] if skip is not None else width
        inner = max(x.shape[-1] // 4, width)
        y = conv_bn_relu(x, inner, 1)
        y = match_size(layers.UpSampling2D(2)(y), target)
        y = conv_bn_relu(conv_bn_relu(y, inner), out, 1)
        x = y if skip is None else layers.Add()([y, skip])
        x = scse(x) if options.scse else x
        levels.append(x)
    return x, levels[:-1]


def fpn(features, strides, size: int, options: ModelConfig):
    """Feature pyramid decoder: top-down pyramid at strides 32..4, each level's segmentation
    features upsampled to stride 4 and concatenated, then one 3x3 block and upsampling to full
    size; its coarser levels are the four pyramid heads."""
    by_stride = dict(zip(strides, features, strict=True))
    pyramid, seg = options.start_filters * 16, options.start_filters * 8
    p = layers.Conv2D(pyramid, 1)(by_stride[32])
    heads = []
    for stride in (32, 16, 8, 4):
        if stride < 32:
            skip = by_stride[stride]
            p = match_size(layers.UpSampling2D(2)(p), tuple(skip.shape[1:3]))
            p = layers.Add()([p, layers.Conv2D(pyramid, 1)(skip)])
        head = conv_bn_relu(conv_bn_relu(p, seg), seg)
        heads.append(scse(head) if options.scse else head)
    quarter = tuple(by_stride[4].shape[1:3])
    x = layers.Concatenate()([upsample_to(h, quarter) for h in heads])
    x = conv_bn_relu(x, seg)
    return upsample_to(x, (size, size)), heads


DECODERS = {"Unet": unet, "FPN": fpn, "Linknet": linknet}
