"""Decoder registry: `DECODERS` maps `encoder.type` to a decoder; adding one is one entry.

A decoder takes the encoder's feature maps (shallow to deep, the last at stride 32), their
strides, the padded input size and the options, and returns features at the padded input
resolution for the logits layer and its coarser levels (deepest first, for deep supervision).
Filter counts scale with `model.start_filters`: the default 16 gives
`segmentation_models`' defaults (U-Net decoder 256-128-64-32-16, FPN pyramid 256 and segmentation
128 channels). Only stock Keras layers are used, so saved models load anywhere.
"""

from keras import layers

BN_MOMENTUM = 0.9  # as the encoders and unet_resnet.py: few steps per fold


def conv_bn_relu(x, filters: int, kernel: int = 3):
    """Convolution, batch norm and ReLU: the decoders' basic unit."""
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.ReLU()(x)


def scse(x, reduction: int = 8):
    """Concurrent spatial and channel squeeze-excitation (Roy et al. 2018).

    Reweights channels by a global-context gate and pixels by a per-pixel gate and adds the two,
    which the best TGS solutions found sharpened salt boundaries at almost no cost.
    """
    channels = x.shape[-1]
    gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = layers.Conv2D(max(channels // reduction, 1), 1, activation="relu")(gate)
    gate = layers.Conv2D(channels, 1, activation="sigmoid")(gate)
    spatial = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return layers.Add()([layers.Multiply()([x, gate]), layers.Multiply()([x, spatial])])


def match_size(x, size: tuple[int, int]):
    """Bilinearly resize `x` to `size` when it differs (only valid-padding encoders need it)."""
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    return layers.Resizing(*size, interpolation="bilinear")(x)


def upsample_to(x, size: tuple[int, int]):
    """Upsample `x` by the integer factor that reaches `size`, then match it exactly."""
    factor = max(round(size[0] / x.shape[1]), 1)
    if factor > 1:
        x = layers.UpSampling2D(factor, interpolation="bilinear")(x)
    return match_size(x, size)


def _targets(features, strides, size: int) -> list:
    """(spatial size, skip or None) for each 2x step from stride 16 down to stride 1."""
    by_stride = dict(zip(strides[:-1], features[:-1], strict=True))
    steps = []
    for stride in (16, 8, 4, 2, 1):
        skip = by_stride.get(stride)
        steps.append((tuple(skip.shape[1:3]) if skip is not None else (size // stride,) * 2, skip))
    return steps


def hypercolumn(levels: list, size: int, filters: int):
    """Hypercolumn fusion: every decoder level, squeezed to `filters` channels, at full size."""
    columns = [upsample_to(conv_bn_relu(x, filters, 1), (size, size)) for x in levels]
    return layers.Concatenate()(columns)


def unet(features, strides, size: int, start_filters=16, scse_blocks=False, hyper=False):
    """U-Net decoder: upsample, concatenate the skip, two 3x3 conv-BN-ReLU; five times."""
    x, levels = features[-1], []
    for (target, skip), mult in zip(
        _targets(features, strides, size), (16, 8, 4, 2, 1), strict=True
    ):
        x = match_size(layers.UpSampling2D(2)(x), target)
        x = x if skip is None else layers.Concatenate()([x, skip])
        x = conv_bn_relu(conv_bn_relu(x, start_filters * mult), start_filters * mult)
        x = scse(x) if scse_blocks else x
        levels.append(x)
    return (hypercolumn(levels, size, start_filters) if hyper else x), levels[:-1]


def linknet(features, strides, size: int, start_filters=16, scse_blocks=False, hyper=False):
    """LinkNet decoder: 1x1 squeeze, upsample + 3x3, 1x1 expand to the skip's width, add it."""
    x, levels = features[-1], []
    for target, skip in _targets(features, strides, size):
        out = skip.shape[-1] if skip is not None else start_filters
        inner = max(x.shape[-1] // 4, start_filters)
        y = conv_bn_relu(x, inner, 1)
        y = match_size(layers.UpSampling2D(2)(y), target)
        y = conv_bn_relu(conv_bn_relu(y, inner), out, 1)
        x = y if skip is None else layers.Add()([y, skip])
        x = scse(x) if scse_blocks else x
        levels.append(x)
    return (hypercolumn(levels, size, start_filters) if hyper else x), levels[:-1]


def fpn(features, strides, size: int, start_filters=16, scse_blocks=False, hyper=False):
    """Feature pyramid decoder: top-down pyramid at strides 32..4, each level's segmentation
    features upsampled to stride 4 and concatenated (a hypercolumn by design, so `hyper` adds
    nothing), then one 3x3 block and upsampling to full size."""
    del hyper
    by_stride = dict(zip(strides, features, strict=True))
    pyramid, seg = start_filters * 16, start_filters * 8
    p = layers.Conv2D(pyramid, 1)(by_stride[32])
    heads = []
    for stride in (32, 16, 8, 4):
        if stride < 32:
            skip = by_stride[stride]
            p = match_size(layers.UpSampling2D(2)(p), tuple(skip.shape[1:3]))
            p = layers.Add()([p, layers.Conv2D(pyramid, 1)(skip)])
        head = conv_bn_relu(conv_bn_relu(p, seg), seg)
        heads.append(scse(head) if scse_blocks else head)
    quarter = tuple(by_stride[4].shape[1:3])
    x = layers.Concatenate()([upsample_to(h, quarter) for h in heads])
    x = conv_bn_relu(x, seg)
    return upsample_to(x, (size, size)), heads


DECODERS = {"Unet": unet, "FPN": fpn, "Linknet": linknet}
