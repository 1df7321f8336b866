"""Segmentation losses in `keras.ops` only, so they run under TensorFlow and JAX alike.

Every loss takes `(y_true, logits)`: the models output logits and the sigmoid is folded into the
loss, which is numerically stabler and lets stage 2 use the Lovasz hinge on the same network.
Each returns one value per image; Keras averages over the batch.
"""

import keras
from keras import ops

from .models import heads


def _flat(x):
    """(N, H, W, 1) -> (N, H*W) float32."""
    return ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], -1))


def bce_with_logits(y, z):
    """Element-wise binary cross-entropy of labels `y` and logits `z`, in the overflow-free form
    max(z, 0) - z y + log(1 + exp(-|z|)); every loss here that needs it uses this one."""
    return ops.relu(z) - z * y + ops.log1p(ops.exp(-ops.abs(z)))


@keras.saving.register_keras_serializable(package="tgssalt")
def bce(y_true, logits):
    """Binary cross-entropy on logits, mean over pixels."""
    return ops.mean(bce_with_logits(_flat(y_true), _flat(logits)), axis=1)


@keras.saving.register_keras_serializable(package="tgssalt")
def focal(y_true, logits, gamma=2.0, alpha=0.25):
    """Focal loss (Lin et al. 2017) on logits, mean over pixels (the original summed)."""
    y, z = _flat(y_true), _flat(logits)
    p = ops.sigmoid(z)
    ce = bce_with_logits(y, z)
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = y * alpha + (1 - y) * (1 - alpha)
    return ops.mean(alpha_t * (1 - p_t) ** gamma * ce, axis=1)


def lovasz_grad(gt_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman 2018)."""
    gts = ops.sum(gt_sorted, axis=1, keepdims=True)
    intersection = gts - ops.cumsum(gt_sorted, axis=1)
    union = gts + ops.cumsum(1.0 - gt_sorted, axis=1)
    jaccard = 1.0 - intersection / union
    return ops.concatenate([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=1)


def _lovasz(y_true, logits, penalty):
    """Per-image Lovasz extension of the Jaccard loss applied to `penalty(errors)`, where the
    hinge errors are 1 - logit * sign (sign +1 on salt, -1 elsewhere), sorted largest first."""
    labels, z = _flat(y_true), _flat(logits)
    errors = 1.0 - z * (2.0 * labels - 1.0)
    errors_sorted, order = ops.top_k(errors, k=ops.shape(errors)[1], sorted=True)
    gt_sorted = ops.take_along_axis(labels, order, axis=1)
    grad = ops.stop_gradient(lovasz_grad(gt_sorted))
    return ops.sum(penalty(errors_sorted) * grad, axis=1)


def _elu_plus_one(errors):
    """elu(e) + 1: equal to e + 1 above 0 and exp(e) below, so never zero and never flat."""
    return ops.elu(errors) + 1.0


@keras.saving.register_keras_serializable(package="tgssalt")
def lovasz_hinge(y_true, logits):
    """Per-image Lovasz hinge: a convex surrogate that directly optimises each image's IoU."""
    return _lovasz(y_true, logits, ops.relu)


@keras.saving.register_keras_serializable(package="tgssalt")
def lovasz_hinge_elu(y_true, logits):
    """Lovasz hinge with elu(errors) + 1 in place of relu(errors), as public TGS kernels used it:
    pixels already on the right side of the margin keep a small, smooth gradient instead of none,
    so the loss keeps pushing confident pixels further (it is never zero)."""
    return _lovasz(y_true, logits, _elu_plus_one)


@keras.saving.register_keras_serializable(package="tgssalt")
def symmetric_lovasz(y_true, logits):
    """Lovasz hinge averaged over the mask and its complement (salt and no-salt as objects)."""
    return 0.5 * (lovasz_hinge(y_true, logits) + lovasz_hinge(1.0 - y_true, -logits))


@keras.saving.register_keras_serializable(package="tgssalt")
def symmetric_lovasz_elu(y_true, logits):
    """`lovasz_hinge_elu` averaged over the mask and its complement."""
    return 0.5 * (lovasz_hinge_elu(y_true, logits) + lovasz_hinge_elu(1.0 - y_true, -logits))


@keras.saving.register_keras_serializable(package="tgssalt")
def bce_lovasz(y_true, logits):
    """BCE plus Lovasz hinge: BCE's smooth start with Lovasz's IoU focus."""
    return bce(y_true, logits) + lovasz_hinge(y_true, logits)


LOSSES = {
    "bce": bce,
    "binary_crossentropy": bce,
    "focal": focal,
    "focal_loss": focal,
    "lovasz_hinge": lovasz_hinge,
    "lovasz": lovasz_hinge,
    "lovasz_hinge_elu": lovasz_hinge_elu,
    "symmetric_lovasz": symmetric_lovasz,
    "symmetric_lovasz_elu": symmetric_lovasz_elu,
    "bce_lovasz": bce_lovasz,
}


# Deep supervision weights, as the 2018 solutions used them: each decoder level's mask head
# counts a tenth of the final mask, the empty-mask head's cross-entropy a tenth too.
LEVEL_WEIGHT = 0.1
EMPTY_WEIGHT = 0.1


def deep_supervised(loss, empty_mask_weight: float = 1.0):
    """`loss` extended to a deep-supervised model's packed logits (`models.heads.unpack`).

    The final mask gets `loss` on every image, times `empty_mask_weight` on images without salt
    (below 1 the mask learns "no salt" less and leaves more of those images to the empty head);
    each decoder level's head gets it only on images with salt (a mask loss on an empty image
    teaches the heads nothing about shape, and the empty head decides those); the empty head
    gets cross-entropy on "has salt".
    """

    def packed_loss(y_true, packed):
        mask, levels, empty_logit = heads.unpack(packed)
        has_salt = heads.has_salt(y_true)
        total = (has_salt + empty_mask_weight * (1.0 - has_salt)) * loss(y_true, mask)
        for level in levels:
            total = total + LEVEL_WEIGHT * has_salt * loss(y_true, level)
        return total + EMPTY_WEIGHT * bce_with_logits(has_salt, empty_logit[:, 0])

    packed_loss.__name__ = f"deep_supervised_{loss.__name__}"
    return packed_loss


def get_loss(name: str, deep_supervision: bool = False, empty_mask_weight: float = 1.0):
    """Look a loss up by name in `LOSSES` (config validation already rejected unknown names),
    extended to packed logits for a deep-supervised model (`deep_supervised`)."""
    if not deep_supervision:
        return LOSSES[name]
    return deep_supervised(LOSSES[name], empty_mask_weight)
