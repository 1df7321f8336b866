"""Deep supervision with an empty-mask head, packed into the channels of the "logits" output.

The best 2018 TGS solutions trained, besides the final mask, a mask head on every decoder level
and an image-level "is there salt?" head on the deepest features: the extra losses reach the
early decoder directly, and the empty head decides the ~40% of images without salt, which a
per-pixel loss (the Lovasz hinge above all) handles badly. `model.deep_supervision` turns it on.

Packing every head into one output keeps stock `compile`/`fit`/`predict`, one target per image
and the `val_score` metric name. Channels: 0 the final mask logits, 1..K one mask head per
decoder level (upsampled to full size), K+1 the empty head's logit repeated over the image.
`losses.deep_supervised` splits them for training; `layers.GatedSaltProbability` turns them into
salt probabilities for prediction.
"""

from keras import layers

from .decoders import upsample_to
from .layers import GatedSaltProbability


def level_heads(levels: list, padded: int, crop: tuple) -> list:
    """A 1x1 mask-logits conv on each decoder level, upsampled to the padded size and cropped."""
    heads = []
    for level in levels:
        x = upsample_to(layers.Conv2D(1, 1, dtype="float32")(level), (padded, padded))
        heads.append(layers.Cropping2D(crop, dtype="float32")(x))
    return heads


def empty_head(bottleneck, size: int):
    """One "has salt" logit per image from the deepest features, repeated to size x size."""
    x = layers.GlobalAveragePooling2D()(bottleneck)
    x = layers.Dense(1, dtype="float32", name="empty_logit")(x)
    x = layers.Reshape((1, 1, 1), dtype="float32")(x)
    return layers.UpSampling2D(size, dtype="float32")(x)


def packed_logits(mask_logits, levels: list, bottleneck, padded: int, crop: tuple):
    """The "logits" output of a deep-supervised model: [mask, level heads..., empty head]."""
    size = mask_logits.shape[1]
    heads = level_heads(levels, padded, crop)
    return layers.Concatenate(name="logits", dtype="float32")(
        [mask_logits, *heads, empty_head(bottleneck, size)]
    )


def is_packed(model) -> bool:
    """Whether `model`'s logits hold deep-supervision heads behind the mask channel."""
    return model.output.shape[-1] > 1


def probability_output(model):
    """Salt probabilities (H, W, 1) from a logits model's output, gated if it is packed."""
    if is_packed(model):
        return GatedSaltProbability(name="salt_probability", dtype="float32")(model.output)
    return layers.Activation("sigmoid", name="salt_probability", dtype="float32")(model.output)
