"""The logits output and the one place that knows how deep-supervision heads are packed.

The best 2018 TGS solutions trained, besides the final mask, a mask head on every decoder level
and an image-level "is there salt?" head on the deepest features: the extra losses reach the
early decoder directly, and the empty head decides the ~40% of images without salt, which a
per-pixel loss (the Lovasz hinge above all) handles badly. `model.deep_supervision` turns it on.

Packing every head into the channels of the one "logits" output keeps stock
`compile`/`fit`/`predict`, one target per image and the `val_score` metric name. Only this module
knows the layout (`pack` / `unpack`); the loss (`losses.deep_supervised`), the Keras metric,
`layers.SaltHeadProbabilities` and `inference` ask it, and `has_salt` is the one definition of
"this image has salt", for the truth and for the empty head alike.
"""

from keras import layers, ops

from .blocks import crop, upsample_to


def logits_output(x, levels: list, deepest, size: int, padded: int, kernel: int, packed: bool):
    """The model's float32 "logits" output from the decoder's padded full-size features `x`:
    cropped to size x size, a `kernel` x `kernel` conv to one channel; with `packed` (deep
    supervision) also a mask head per coarser decoder level and the empty head on `deepest`."""
    x = crop(x, size, padded)
    name = "mask_logits" if packed else "logits"
    mask = layers.Conv2D(1, kernel, padding="same", name=name, dtype="float32")(x)
    if not packed:
        return mask
    heads = [_level_head(level, size, padded) for level in levels]
    empty = layers.Dense(1, dtype="float32", name="empty_logit")(
        layers.GlobalAveragePooling2D()(deepest)
    )
    return pack(mask, heads, empty)


def _level_head(level, size: int, padded: int):
    """A 1x1 mask-logits conv on one decoder level, upsampled to the padded size and cropped."""
    x = upsample_to(layers.Conv2D(1, 1, dtype="float32")(level), (padded, padded))
    return crop(x, size, padded, dtype="float32")


def pack(mask, levels: list, empty_logit):
    """[mask, level heads..., empty logit repeated over the image] along the channels: (N, H, W,
    1) mask and level logits and (N, 1) empty logits -> (N, H, W, 2 + len(levels)). Keras layers,
    so it builds a model's output and packs arrays alike."""
    empty = layers.Reshape((1, 1, 1), dtype="float32")(empty_logit)
    empty = layers.UpSampling2D(mask.shape[1], dtype="float32")(empty)
    return layers.Concatenate(name="logits", dtype="float32")([mask, *levels, empty])


def unpack(packed) -> tuple:
    """(mask logits (N, H, W, 1), [level logits (N, H, W, 1)...], empty logits (N, 1)) from a
    deep-supervised model's packed logits: the inverse of `pack`."""
    mask = packed[..., :1]
    levels = [packed[..., k : k + 1] for k in range(1, packed.shape[-1] - 1)]
    empty = ops.mean(ops.cast(packed[..., -1], "float32"), axis=(1, 2))
    return mask, levels, ops.expand_dims(empty, -1)


def is_packed(model) -> bool:
    """Whether `model`'s logits hold deep-supervision heads behind the mask channel."""
    return is_packed_tensor(model.output)


def is_packed_tensor(x) -> bool:
    """Whether an (N, H, W, C) logits or probability batch is packed (more than one channel)."""
    return len(x.shape) == 4 and x.shape[-1] > 1


def has_salt(values):
    """(N,) float32, 1 for each image with any value above 0.5: a true mask with a salt pixel,
    or the empty head's salt probability saying "salt". The one definition of "has salt"."""
    flat = ops.reshape(ops.cast(values, "float32"), (ops.shape(values)[0], -1))
    return ops.cast(ops.max(flat, axis=1) > 0.5, "float32")


def gated_probability(packed, from_logits: bool = True):
    """Salt probabilities (N, H, W, 1) of packed heads: the mask channel, set to 0 on images
    whose empty head says "no salt". `from_logits`: the channels are logits (else sigmoids)."""
    mask, _, empty = unpack(packed)
    mask = ops.cast(mask, "float32")
    if from_logits:
        mask, empty = ops.sigmoid(mask), ops.sigmoid(empty)
    return mask * ops.reshape(has_salt(empty), (-1, 1, 1, 1))


def head_probabilities(packed):
    """(N, H, W, 2) probabilities of packed logits: the mask's sigmoid and the empty head's "has
    salt" probability repeated over the image, itself a packed batch without level heads. The
    exported models output it, so flip TTA and snapshots average both heads and
    `gated_probability(..., from_logits=False)` gates the average once: measured out of fold,
    gating each flip and snapshot before averaging scored lower."""
    mask, _, empty = unpack(packed)
    mask = ops.sigmoid(ops.cast(mask, "float32"))
    salt = ops.reshape(ops.sigmoid(empty), (-1, 1, 1, 1))
    return ops.concatenate([mask, ops.ones_like(mask) * salt], axis=-1)
