"""Losses against numpy references, model shapes of both families, the model keys a config may
not set, and losses and models under TensorFlow and JAX."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tgssalt import losses
from tgssalt.config import resolve_config, save_config
from tgssalt.errors import UserError
from tgssalt.models import build_model, with_sigmoid
from tgssalt.paths import CONFIG_FOLDER

CODE = Path(__file__).resolve().parents[1]


def lovasz_hinge_reference(labels: np.ndarray, logits: np.ndarray) -> float:
    """Berman et al.'s Lovasz hinge for one image, written plainly in numpy."""
    labels, logits = labels.ravel().astype(float), logits.ravel().astype(float)
    errors = 1.0 - logits * (2 * labels - 1)
    order = np.argsort(-errors, kind="stable")
    errors, gt = errors[order], labels[order]
    gts = gt.sum()
    jaccard = 1.0 - (gts - np.cumsum(gt)) / (gts + np.cumsum(1 - gt))
    grad = np.concatenate([jaccard[:1], np.diff(jaccard)])
    return float(np.dot(np.maximum(errors, 0), grad))


def test_lovasz_hinge_matches_reference():
    rng = np.random.default_rng(0)
    y = (rng.random((3, 7, 7, 1)) > 0.6).astype("float32")
    y[1] = 0  # an empty mask
    z = rng.normal(size=(3, 7, 7, 1)).astype("float32")
    got = np.asarray(losses.lovasz_hinge(y, z))
    want = [lovasz_hinge_reference(y[i], z[i]) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lovasz_hinge_is_zero_for_confident_correct_logits():
    y = np.zeros((1, 4, 4, 1), "float32")
    y[0, :2] = 1
    z = np.where(y > 0, 3.0, -3.0).astype("float32")
    assert float(losses.lovasz_hinge(y, z)[0]) == pytest.approx(0.0)
    assert float(losses.lovasz_hinge(y, -z)[0]) > 1.0


def two_pixels(logits) -> tuple[np.ndarray, np.ndarray]:
    """One image of two pixels: salt, then background, with the given logits."""
    y = np.array([1.0, 0.0], "float32").reshape(1, 1, 2, 1)
    return y, np.array(logits, "float32").reshape(1, 1, 2, 1)


def test_lovasz_variants_by_hand():
    """Two pixels, salt then background. Logits (0.5, 0.5): hinge errors 1 - 0.5 = 0.5 (salt)
    and 1 + 0.5 = 1.5 (background); sorted (1.5 bg, 0.5 salt), the Jaccard gradient is
    (0.5, 0.5): relu gives 0.5 x 1.5 + 0.5 x 0.5 = 1, elu + 1 gives 0.5 x 2.5 + 0.5 x 1.5 = 2.
    The complement (labels flipped, logits negated) has the same errors with background as the
    object, sorted (1.5 object, 0.5 not): gradient (1, 0), so 1.5 (relu) and 2.5 (elu + 1)."""
    y, z = two_pixels([0.5, 0.5])
    value = lambda name: float(np.asarray(losses.LOSSES[name](y, z))[0])  # noqa: E731
    assert value("lovasz_hinge") == pytest.approx(1.0)
    assert value("lovasz_hinge_elu") == pytest.approx(2.0)
    assert value("symmetric_lovasz") == pytest.approx(0.5 * (1.0 + 1.5))
    assert value("symmetric_lovasz_elu") == pytest.approx(0.5 * (2.0 + 2.5))


def test_elu_lovasz_differs_where_errors_are_negative():
    """Logits (2, -3): both pixels right beyond the margin, errors -1 and -2, gradient (1, 0):
    the relu hinge is 0, elu + 1 is exp(-1)."""
    y, z = two_pixels([2.0, -3.0])
    assert float(np.asarray(losses.lovasz_hinge(y, z))[0]) == pytest.approx(0.0)
    assert float(np.asarray(losses.lovasz_hinge_elu(y, z))[0]) == pytest.approx(np.exp(-1.0))


def loss_gradient(loss, y, z) -> np.ndarray:
    """d mean(loss) / d logits, under the backend the tests run on."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(lambda t: keras.ops.mean(loss(y, t)))(z))
    import tensorflow as tf

    t = tf.Variable(z)
    with tf.GradientTape() as tape:
        value = keras.ops.mean(loss(y, t))
    return np.asarray(tape.gradient(value, t))


def test_elu_lovasz_gradients_are_finite_and_keep_pushing_confident_pixels():
    rng = np.random.default_rng(3)
    y = (rng.random((2, 6, 6, 1)) > 0.5).astype("float32")
    z = rng.normal(scale=4, size=(2, 6, 6, 1)).astype("float32")
    for name in ("lovasz_hinge_elu", "symmetric_lovasz_elu"):
        assert np.isfinite(loss_gradient(losses.LOSSES[name], y, z)).all(), name
    y, z = two_pixels([2.0, -3.0])  # both right: relu's gradient vanishes, elu's does not
    assert not loss_gradient(losses.lovasz_hinge, y, z).any()
    grad = loss_gradient(losses.lovasz_hinge_elu, y, z).ravel()
    assert grad[0] == pytest.approx(-np.exp(-1.0)) and grad[1] == 0  # salt pushed up


def test_bce_matches_numpy():
    rng = np.random.default_rng(1)
    y = (rng.random((2, 5, 5, 1)) > 0.5).astype("float32")
    z = rng.normal(scale=3, size=(2, 5, 5, 1)).astype("float32")
    p = 1 / (1 + np.exp(-z))
    want = -(y * np.log(p) + (1 - y) * np.log(1 - p)).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(np.asarray(losses.bce(y, z)), want, rtol=1e-5)


def test_focal_is_below_bce_and_every_loss_is_registered():
    rng = np.random.default_rng(2)
    y = (rng.random((2, 5, 5, 1)) > 0.5).astype("float32")
    z = rng.normal(size=(2, 5, 5, 1)).astype("float32")
    assert (np.asarray(losses.focal(y, z)) < np.asarray(losses.bce(y, z))).all()
    for name, fn in losses.LOSSES.items():
        value = np.asarray(fn(y, z))
        assert value.shape == (2,) and np.isfinite(value).all(), name


@pytest.mark.parametrize("size", [101, 128, 77])
def test_model_output_matches_input_size(size):
    config = resolve_config({"input": {"size": size}, "model": {"start_filters": 4, "depth": 3}})
    model = build_model(config)
    x = np.zeros((2, size, size, 1), "float32")
    assert model.predict(x, verbose=0).shape == (2, size, size, 1)
    probs = with_sigmoid(model).predict(x, verbose=0)
    assert ((probs >= 0) & (probs <= 1)).all()


SCRATCH = {"model": {"start_filters": 4, "depth": 3}}
ON_BACKBONE = {
    "model": {"start_filters": 4},
    "encoder": {"type": "Unet", "backbone": "resnet34", "weights": None},
}


@pytest.mark.parametrize(
    ("user", "levels"), [(SCRATCH, 2), (ON_BACKBONE, 4)], ids=["unet_resnet", "resnet34"]
)
@pytest.mark.parametrize("deep", [False, True])
def test_both_families_one_factory(user, levels, deep):
    """The same assembly for both families: logits (H, W, 1), or the mask, one head per
    coarser decoder level (depth 3: 2; the five-step U-Net decoder: 4) and the empty head;
    probabilities (H, W, 1), or the mask's and the empty head's (H, W, 2)."""
    user = {**user, "input": {"size": 45}, "model": {**user["model"], "deep_supervision": deep}}
    model = build_model(resolve_config(user))
    x = np.random.default_rng(0).random((2, 45, 45, 1)).astype("float32")
    logits = model.predict(x, verbose=0)
    assert logits.shape == (2, 45, 45, 2 + levels if deep else 1)
    assert model.output.dtype == "float32" and model.layers[-1].name == "logits"
    probs = with_sigmoid(model).predict(x, verbose=0)
    assert probs.shape == (2, 45, 45, 2 if deep else 1) and ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({**ON_BACKBONE, "model": {"depth": 5}}, ["'model.depth'", "'encoder'", "depth"]),
        ({**ON_BACKBONE, "model": {"dropout": 0.2}}, ["'model.dropout'", "no dropout"]),
        ({**ON_BACKBONE, "model": {"type": "fcn"}}, ["'model.type'", "encoder.type"]),
        (
            {"stage1": {"epochs_weights_frozen": 2}},
            ["'stage1.epochs_weights_frozen'", "needs an 'encoder'"],
        ),
        ({"stage2": {"cycles": 3}}, ["'stage2.cycles'", "'cosine' only"]),
        (
            {"stage2": {"schedule": "cosine", "cycles": 2, "reduce_lr_patience": 3}},
            ["'stage2.reduce_lr_patience'", "'plateau' only"],
        ),
        ({"model": {"type": "fcn"}}, ["'model.type'", "unknown name 'fcn'", "unet_resnet"]),
        ({"encoder": {"backbone": "vgg"}}, ["'encoder.backbone'", "known:", "resnet34"]),
        ({"encoder": {"backbone": "resnet34", "type": "PSP"}}, ["'encoder.type'", "FPN"]),
    ],
)
def test_keys_that_do_not_apply_are_refused_with_the_reason(user, expected):
    with pytest.raises(UserError) as info:
        resolve_config(user)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_freezing_the_encoder_applies_to_either_stage():
    config = resolve_config({**ON_BACKBONE, "stage2": {"epochs_weights_frozen": 1}})
    assert config.stage2.epochs_weights_frozen == 1


def test_only_keys_the_user_set_are_refused(tmp_path):
    """Defaults are in every merged config; a saved, resolved encoder config (every key at its
    default or the user's value) loads back; the original's encoder configs load as written."""
    config = resolve_config(ON_BACKBONE)  # model.depth, dropout, type: defaults, not refused
    save_config(config, tmp_path / "saved.json")
    assert resolve_config(json.loads((tmp_path / "saved.json").read_text())) == config
    for path in sorted(CONFIG_FOLDER.rglob("unet-pretrained-encoder-*.json")):
        assert resolve_config(json.loads(path.read_text())).stage1.epochs_weights_frozen > 0


def test_original_model_size():
    """The original's U-Net with ResNet blocks, start filters 16: about 5.1 M parameters."""
    model = build_model(resolve_config({}))
    assert 5.0e6 < model.count_params() < 5.2e6


BACKEND_CHECK = """
import json, numpy as np, keras
from keras import ops
from tgssalt import losses
from tgssalt.config import resolve_config
from tgssalt.models import build_model
rng = np.random.default_rng(0)
y = (rng.random((2, 101, 101, 1)) > 0.7).astype("float32")
model = build_model(resolve_config({"model": {"start_filters": 4, "depth": 2}}))
x = rng.random((2, 101, 101, 1)).astype("float32")
z = model(x, training=False)
if keras.backend.backend() == "jax":
    import jax
    g = jax.grad(lambda t: ops.mean(losses.lovasz_hinge(y, t)))(ops.convert_to_tensor(z))
else:
    import tensorflow as tf
    t = tf.Variable(z)
    with tf.GradientTape() as tape:
        loss = ops.mean(losses.lovasz_hinge(y, t))
    g = tape.gradient(loss, t)
g = np.asarray(g)
print(json.dumps({"backend": keras.backend.backend(), "shape": list(z.shape),
                  "finite": bool(np.isfinite(g).all()), "nonzero": bool(np.abs(g).sum() > 0),
                  "loss": float(np.mean(losses.lovasz_hinge(y, np.asarray(z))))}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_model_and_lovasz_gradient_under_backend(backend):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": str(CODE),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", BACKEND_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        **result,
        "backend": backend,
        "shape": [2, 101, 101, 1],
        "finite": True,
        "nonzero": True,
    }
    assert np.isfinite(result["loss"])
