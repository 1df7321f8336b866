"""The custom layers the toolkit's models may hold, in `keras.ops` only, registered so that
saved `.keras` files load anywhere `tgssalt.models` is imported.

Everything else in the models is a stock Keras layer.
"""

import keras
from keras import layers, ops

from . import heads


@keras.saving.register_keras_serializable(package="tgssalt")
class CoordChannels(layers.Layer):
    """Append two channels to an image batch: the relative depth of each row (0 at the top,
    1 at the bottom) and the first image channel times it.

    A seismic section's texture changes with depth and salt bodies sit in the middle and lower
    rows more often than at the top; convolutions are translation-invariant and cannot see the
    row without help. These are the "depth channels" of the 2018 public kernels (CoordConv,
    Liu et al. 2018): computed from the image's own geometry, so unlike `depths.csv` they exist
    for any image `predict.py` is given.
    """

    def call(self, images):
        height = images.shape[1]
        rows = ops.linspace(0.0, 1.0, height) if height > 1 else ops.zeros((1,))
        depth = ops.ones_like(images[..., :1]) * ops.reshape(
            ops.cast(rows, images.dtype), (1, -1, 1, 1)
        )
        return ops.concatenate([images, depth, images[..., :1] * depth], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)


@keras.saving.register_keras_serializable(package="tgssalt")
class CumsumChannel(layers.Layer):
    """Append one channel: the first image channel, centred on its image mean, summed down
    each column from the top row and divided by the image height.

    A small encoder sees a few dozen pixels around each one; whether the rock above is brighter
    or darker than the image as a whole, and whether a near-uniform image is uniform all the way
    down, needs a column's whole history. This is the "cumsum channel" of 2018 TGS kernels:
    a running vertical context computed from the image alone. Dividing by the height keeps it
    within the image's own value range at any `input.size`.
    """

    def call(self, images):
        first = images[..., :1]
        centred = first - ops.mean(first, axis=(1, 2), keepdims=True)
        return ops.concatenate(
            [images, ops.cumsum(centred, axis=1) / float(images.shape[1])], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


@keras.saving.register_keras_serializable(package="tgssalt")
class SaltHeadProbabilities(layers.Layer):
    """The exported probabilities of a deep-supervised model's packed logits: the mask's sigmoid
    and the empty-mask head's "has salt" probability, as two channels (`heads.head_probabilities`).

    A per-pixel loss leaves faint false positives on the ~40% of images without salt, each of
    which scores 0: the 2018 solutions' reason for an image-level classifier (here it adds
    little once the ensemble's threshold and minimum area are searched; docs/results.md).
    Prediction (`inference.predict_probs`) averages both channels over flips and snapshots, then
    empties the images whose averaged head says "no salt".
    """

    def call(self, packed):
        return heads.head_probabilities(packed)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


@keras.saving.register_keras_serializable(package="tgssalt")
class GatedSaltProbability(layers.Layer):
    """The mask's sigmoid, emptied where the empty-mask head says "no salt": what deep-supervised
    models exported before `SaltHeadProbabilities` output. Kept so that their `.keras` files
    still load and predict."""

    def call(self, packed):
        return heads.gated_probability(packed)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)
