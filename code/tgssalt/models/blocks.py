"""Layer-level building blocks every model family shares: conv-BN-ReLU, scSE, resizing, the
pad-then-crop of any input size, and hypercolumn fusion. Stock Keras layers only.

Each fact lives here once: the batch-norm momentum, how an input is padded to an encoder's
stride multiple and cropped back, and what a hypercolumn is.
"""

from keras import layers

from ..sizes import margins

# Keras' default 0.99 leaves the moving statistics far from the batch statistics after the few
# hundred steps of a small fold (validation predictions collapsed to all-empty); 0.9 is also
# PyTorch's default, under which the timm / torchvision ImageNet encoders were trained.
BN_MOMENTUM = 0.9


def batch_norm():
    """A batch-norm layer with the toolkit's momentum."""
    return layers.BatchNormalization(momentum=BN_MOMENTUM)


def conv_bn_relu(x, filters: int, kernel: int = 3, relu: bool = True):
    """Convolution (no bias: batch norm follows), batch norm and, optionally, ReLU."""
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return layers.ReLU()(x) if relu else x


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


def padded_size(size: int, stride: int, min_size: int = 1) -> int:
    """The size an encoder runs at: `size` rounded up to a multiple of its `stride`, at least
    `min_size`, so that every downsampling halves exactly and any `input.size` works."""
    return max(-(-size // stride) * stride, min_size)


def pad(x, size: int, padded: int):
    """Zero-pad a size x size map to padded x padded (undone by `crop`), centred by
    `sizes.margins`, the rule the pipeline's padding (`input.mode` "pad") follows too."""
    return layers.ZeroPadding2D(margins(size, padded))(x)


def crop(x, size: int, padded: int, **kwargs):
    """Crop a padded x padded map back to size x size (undoes `pad`); `kwargs` (a dtype or a
    name) go to the cropping layer."""
    return layers.Cropping2D(margins(size, padded), **kwargs)(x)


def hypercolumn(levels: list, size: int, filters: int):
    """Hypercolumn fusion: every decoder level (coarsest first, the full-size one last),
    squeezed to `filters` channels by a 1x1 conv-BN-ReLU and upsampled to size x size,
    concatenated, so the logits see coarse context and fine detail at every pixel."""
    columns = [upsample_to(conv_bn_relu(x, filters, 1), (size, size)) for x in levels]
    return layers.Concatenate()(columns)
