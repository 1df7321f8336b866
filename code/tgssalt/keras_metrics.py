"""The competition metric as a Keras metric, in `keras.ops` only, for TensorFlow and JAX alike.

The same computation as the numpy reference in `metrics`, which the tests compare it with; it is
kept apart so that scoring a submission never imports a deep-learning backend.
"""

import keras
from keras import ops

from .competition import DEFAULT_THRESHOLD
from .metrics import THRESHOLD_PERCENTS
from .models import heads


@keras.saving.register_keras_serializable(package="tgssalt")
def competition_score_ops(
    y_true: object, y_pred: object, threshold: float = DEFAULT_THRESHOLD, from_logits: bool = False
) -> object:
    """Per-image competition score (batch,) in `keras.ops`, for any backend.

    `y_true` is a binary mask batch (values > 0.5 are salt); `y_pred` holds probabilities, or
    logits when `from_logits`, and is salt where it exceeds `threshold` (after the sigmoid).
    A deep-supervised model's packed logits (`models.heads`) are scored as they are predicted:
    the mask channel, emptied where the empty-mask head says so (`heads.gated_probability`).
    Counts are float32, exact for images up to 2**24 / 100 pixels, as the numpy metric's are.
    """
    y_pred = _salt_probability(y_pred, from_logits)
    truth = ops.cast(ops.greater(ops.cast(y_true, "float32"), 0.5), "float32")
    pred = ops.cast(ops.greater(ops.cast(y_pred, "float32"), threshold), "float32")
    axes = tuple(range(1, len(truth.shape)))
    intersection = ops.sum(truth * pred, axis=axes)
    union = ops.sum(ops.maximum(truth, pred), axis=axes)
    percents = ops.convert_to_tensor(THRESHOLD_PERCENTS.astype("float32"))
    hits = ops.greater(100.0 * intersection[:, None], percents[None, :] * union[:, None])
    scores = ops.mean(ops.cast(hits, "float32"), axis=1)
    return ops.where(ops.equal(union, 0.0), ops.ones_like(scores), scores)


def _salt_probability(y_pred, from_logits: bool):
    """Probabilities from `y_pred`; packed heads become the gated mask (`models.heads`)."""
    if heads.is_packed_tensor(y_pred):
        return heads.gated_probability(y_pred, from_logits)
    return ops.sigmoid(y_pred) if from_logits else y_pred


@keras.saving.register_keras_serializable(package="tgssalt")
class CompetitionScore(keras.metrics.MeanMetricWrapper):
    """Keras metric: the running mean of `competition_score_ops` over the images seen.

    Named "score" by default, so training logs show `score` and `val_score`.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        from_logits: bool = False,
        name: str = "score",
        dtype: str | None = None,
    ) -> None:
        super().__init__(
            fn=competition_score_ops,
            name=name,
            dtype=dtype,
            threshold=threshold,
            from_logits=from_logits,
        )
        self.threshold = threshold
        self.from_logits = from_logits

    def get_config(self) -> dict:
        """The constructor's arguments, so a saved model's metric is rebuilt as it was."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "threshold": self.threshold,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config: dict) -> "CompetitionScore":
        """Rebuild from `get_config` output."""
        return cls(**config)
