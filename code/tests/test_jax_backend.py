"""The package under JAX (the GPU machines run JAX, CI's default backend is TensorFlow).

One JAX subprocess (its start-up and compiles are the cost) trains both model families for a step:
the from-scratch U-Net with coordinate channels, packed deep-supervision heads, the deep-supervised
Lovasz loss (half the mask loss on empty images) and the gate; and a pretrained-encoder Linknet
with scSE. It also loads, with plain Keras, a model saved under TensorFlow. (The slow end-to-end
runs in test_encoders.py train all four original encoders, resnext50's grouped convolutions
included, under JAX.)

Marked slow: JAX's CPU compiles make it the longest subprocess of the suite. The default run
still runs models under JAX (test_losses_models.py: model gradients and the Lovasz loss;
test_metrics.py: the Keras metric trains, saves and reloads on both backends)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tgssalt.config import resolve_config
from tgssalt.models import build_model

CODE = Path(__file__).resolve().parents[1]

JAX_CHECK = """
import json, sys, numpy as np, keras
from tgssalt.config import resolve_config
from tgssalt.inference import gate
from tgssalt.losses import get_loss
from tgssalt.models import build_model, with_sigmoid

def fit_one_step(config, loss, size):
    model = build_model(resolve_config(config))
    model.compile(optimizer="adam", loss=loss)
    x = np.random.default_rng(0).random((4, size, size, 1)).astype("float32")
    y = (x > 0.5).astype("float32"); y[:2] = 0
    return model, x, model.fit(x, y, verbose=0).history["loss"][0]

unet, x, unet_loss = fit_one_step(
    {"input": {"size": 48, "coord_channels": True, "cumsum_channel": True},
     "model": {"start_filters": 4, "depth": 3, "deep_supervision": True}},
    get_loss("lovasz_hinge", True, empty_mask_weight=0.5), 48)
probs = with_sigmoid(unet).predict(x, verbose=0)
linknet, x40, linknet_loss = fit_one_step(
    {"input": {"size": 40}, "model": {"start_filters": 4, "scse": True},
     "encoder": {"type": "Linknet", "backbone": "resnet34", "weights": None}},
    get_loss("bce"), 40)
plain = keras.saving.load_model(sys.argv[1], compile=False)  # saved under TensorFlow
print(json.dumps({
    "backend": keras.backend.backend(),
    "unet": {"loss": float(unet_loss), "shape": list(probs.shape),
             "gated_shape": list(gate(probs).shape),
             "in_01": bool((probs >= 0).all() and (probs <= 1).all())},
    "linknet": {"loss": float(linknet_loss), "shape": list(linknet(x40).shape)},
    "loaded": list(plain(np.zeros((1, 64, 64, 1), "float32")).shape)}))
"""


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory) -> dict:
    """Save a TensorFlow-built encoder model, then run JAX_CHECK under JAX on it."""
    path = tmp_path_factory.mktemp("jax") / "unet.keras"
    encoder = {"backbone": "resnet34", "weights": None}
    config = {"input": {"size": 64}, "model": {"start_filters": 4}, "encoder": encoder}
    build_model(resolve_config(config)).save(path)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(CODE), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", JAX_CHECK, str(path)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_unet_techniques_train_under_jax(jax_run):
    """Coordinate channels, packed heads, the deep-supervised Lovasz loss and the gate."""
    assert jax_run["backend"] == "jax" and np.isfinite(jax_run["unet"]["loss"])
    # The export keeps the mask's and the empty head's probabilities; the gate runs after averaging.
    assert jax_run["unet"]["shape"] == [4, 48, 48, 2] and jax_run["unet"]["in_01"]
    assert jax_run["unet"]["gated_shape"] == [4, 48, 48, 1]


def test_encoder_model_trains_under_jax_and_loads_a_tensorflow_save(jax_run):
    assert np.isfinite(jax_run["linknet"]["loss"])
    assert jax_run["linknet"]["shape"] == [4, 40, 40, 1] and jax_run["loaded"] == [1, 64, 64, 1]
