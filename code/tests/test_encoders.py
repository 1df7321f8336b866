"""Encoder models: every backbone and decoder builds for any input size, weights load from
files (Keras and timm), freezing holds the encoder still, errors are one line, saved models load
with plain Keras (JAX: test_jax_backend.py). The sweeps and end-to-end runs are marked slow."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from tgssalt.config import resolve_config
from tgssalt.errors import UserError
from tgssalt.losses import bce
from tgssalt.models import BACKBONES, DECODERS, build_model, with_sigmoid
from tgssalt.models.inputs import adapt_input
from tgssalt.paths import CONFIG_FOLDER
from tgssalt.training import set_encoder_trainable

CODE = Path(__file__).resolve().parents[1]
ORIGINAL = sorted(CONFIG_FOLDER.glob("unet-pretrained-encoder-*.json"))


def config(backbone="resnet34", type_="Unet", size=64, weights=None, **model) -> dict:
    """A resolved config for a small encoder model (decoder start_filters 4 unless given)."""
    return resolve_config(
        {
            "input": {"size": size, **model.pop("input", {})},
            "model": {"start_filters": 4, **model},
            "encoder": {"type": type_, "backbone": backbone, "weights": weights},
        }
    )


def predict_shape(model, size: int, channels: int = 1) -> tuple:
    return model.predict(np.zeros((2, size, size, channels), "float32"), verbose=0).shape


def encoder_arrays(model) -> list:
    return [np.array(w) for w in model.get_layer("encoder").weights]


@pytest.mark.parametrize("type_", sorted(DECODERS))
def test_every_decoder_on_resnet34_with_and_without_scse_hypercolumn(type_):
    plain = build_model(config(type_=type_, size=101))
    assert predict_shape(plain, 101) == (2, 101, 101, 1)
    assert plain.layers[-1].name == "logits" and plain.output.dtype == "float32"
    assert plain.get_layer("encoder").count_params() == 21_301_696  # torchvision's, less fc
    model = build_model(config(type_=type_, size=128, scse=True, hypercolumn=True))
    assert predict_shape(model, 128) == (2, 128, 128, 1)
    assert model.count_params() > plain.count_params()


@pytest.mark.parametrize("options", [{"scse": True}, {"hypercolumn": True}])
def test_unet_resnet_takes_scse_and_hypercolumn(options):
    base = {"start_filters": 4, "depth": 3}
    plain = build_model(resolve_config({"model": base}))
    model = build_model(resolve_config({"model": {**base, **options}}))
    assert predict_shape(model, 101) == (2, 101, 101, 1)
    assert model.count_params() > plain.count_params()


@pytest.mark.parametrize("backbone", ["inceptionresnetv2", "efficientnetb0"])
def test_unusual_backbones_at_101px(backbone):
    """Valid padding (inception: decoders resize), preprocessing inside the backbone (effnet).
    The slow sweep builds every other backbone too."""
    model = build_model(config(backbone, size=101, input={"channels": 3}))
    assert predict_shape(model, 101, channels=3) == (2, 101, 101, 1)


@pytest.mark.parametrize(
    ("backbone", "mode"),
    [("resnet34", "torch"), ("densenet121", "torch"), ("resnet50", "caffe"), ("resnet50v2", "tf")],
)
@pytest.mark.parametrize("pixel_max", [1.0, 255.0])
def test_preprocessing_matches_keras_applications(backbone, mode, pixel_max):
    """The in-model preprocessing equals keras.applications' `preprocess_input` on RGB input."""
    inputs = keras.Input((5, 5, 3))
    preprocess = BACKBONES[backbone].preprocess
    model = keras.Model(inputs, adapt_input(inputs, False, preprocess, pixel_max))
    rgb = np.random.default_rng(0).random((2, 5, 5, 3)).astype("float32")
    want = keras.applications.imagenet_utils.preprocess_input(rgb * 255.0, mode=mode)
    got = model.predict(rgb * (pixel_max / 1.0), verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_grayscale_is_replicated_to_three_channels():
    inputs = keras.Input((5, 5, 1))
    model = keras.Model(inputs, adapt_input(inputs, False, BACKBONES["resnet34"].preprocess))
    out = model.predict(np.full((1, 5, 5, 1), 0.5, "float32"), verbose=0)
    want = keras.applications.imagenet_utils.preprocess_input(
        np.full((1, 5, 5, 3), 127.5), mode="torch"
    )
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_local_weights_file_round_trip(tmp_path):
    first = build_model(config())
    path = tmp_path / "encoder.weights.h5"
    first.get_layer("encoder").save_weights(path)
    second = build_model(config(weights=str(path)))
    for a, b in zip(encoder_arrays(first), encoder_arrays(second), strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = build_model(config())
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(encoder_arrays(first), encoder_arrays(fresh), strict=True)
    )


def write_safetensors(path: Path, tensors: dict) -> None:
    """The safetensors format: an 8-byte header length, a JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for key, array in tensors.items():
        data = np.ascontiguousarray(array, "<f4").tobytes()
        header[key] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def timm_resnet_state(blocks, bottleneck: bool, groups: int = 1) -> dict:
    """Random tensors under timm's ResNet/ResNeXt names and PyTorch (O, I, kH, kW) shapes."""
    rng = np.random.default_rng(0)
    state = {}

    def conv(key, out, inp, k):
        state[f"{key}.weight"] = rng.normal(size=(out, inp, k, k))

    def bn(key, n):
        for part in ("weight", "bias", "running_mean"):
            state[f"{key}.{part}"] = rng.normal(size=n)
        state[f"{key}.running_var"] = rng.random(n) + 0.5
        state[f"{key}.num_batches_tracked"] = np.zeros(())

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    channels = 64
    for stage, count in enumerate(blocks):
        planes = 64 * 2**stage
        out = planes * 4 if bottleneck else planes
        width = planes * groups * 4 // 64 if bottleneck else planes
        for b in range(count):
            key = f"layer{stage + 1}.{b}"
            if bottleneck:
                shapes = [(width, channels, 1), (width, width // groups, 3), (out, width, 1)]
            else:
                shapes = [(out, channels, 3), (out, out, 3)]
            for index, shape in enumerate(shapes, start=1):
                conv(f"{key}.conv{index}", *shape)
                bn(f"{key}.bn{index}", shape[0])
            if b == 0 and channels != out:
                conv(f"{key}.downsample.0", out, channels, 1)
                bn(f"{key}.downsample.1", out)
            channels = out
    state["fc.weight"], state["fc.bias"] = rng.normal(size=(1000, channels)), rng.normal(size=1000)
    return state


@pytest.mark.parametrize(
    ("backbone", "state"),
    [
        ("resnet34", timm_resnet_state((3, 4, 6, 3), bottleneck=False)),
        ("resnext50", timm_resnet_state((3, 4, 6, 3), bottleneck=True, groups=32)),
    ],
)
def test_timm_checkpoint_loads_into_native_resnets(tmp_path, backbone, state):
    path = tmp_path / "model.safetensors"
    write_safetensors(path, state)
    encoder = build_model(config(backbone, weights=str(path))).get_layer("encoder")
    conv = encoder.get_layer("conv3_block2_2_conv").kernel
    np.testing.assert_allclose(
        conv, state["layer2.1.conv2.weight"].transpose(2, 3, 1, 0), rtol=1e-6
    )
    down = encoder.get_layer("conv4_block1_0_bn")
    np.testing.assert_allclose(
        down.moving_variance, state["layer3.0.downsample.1.running_var"], rtol=1e-6
    )
    used = {k for k in state if not k.startswith("fc.") and "num_batches" not in k}
    assert sum(int(np.prod(state[k].shape)) for k in used) == encoder.count_params()
    del state["layer4.2.bn2.bias"]
    write_safetensors(path, state)
    with pytest.raises(UserError, match="layer4.2.bn2"):
        build_model(config(backbone, weights=str(path)))


def test_weights_file_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        build_model(config(weights=str(tmp_path / "missing.weights.h5")))
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"x")
    with pytest.raises(UserError, match="safetensors"):
        build_model(config(weights=str(wrong)))


@pytest.mark.parametrize("backbone", ["resnet34", "efficientnetb0"])
def test_imagenet_download_failure_says_what_to_do(monkeypatch, backbone):
    """Offline, both weight sources (timm on the Hub, keras.applications) fail in one line."""
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/x: None -- no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(UserError) as info:
        build_model(config(backbone, weights="imagenet"))
    message = str(info.value)
    assert "\n" not in message and "'encoder.weights'" in message
    assert "~/.keras/models" in message and "path" in message


def test_frozen_encoder_stays_fixed_while_decoder_trains():
    model = build_model(config(size=64))
    x = np.random.default_rng(0).random((4, 64, 64, 1)).astype("float32")
    y = (x > 0.5).astype("float32")
    decoder = model.get_layer("logits")
    set_encoder_trainable(model, False)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=bce, run_eagerly=True)
    before, logits_before = encoder_arrays(model), np.array(decoder.kernel)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(before, encoder_arrays(model), strict=True):
        np.testing.assert_array_equal(a, b)  # batch-norm statistics included
    assert not np.array_equal(logits_before, np.array(decoder.kernel))
    set_encoder_trainable(model, True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=bce, run_eagerly=True)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(before, encoder_arrays(model), strict=True))


def test_saved_model_loads_with_plain_keras(tmp_path):
    """With the frozen RGB-to-BGR layer of caffe-style ResNet50, scSE blocks, a hypercolumn and
    the packed deep-supervision heads behind the gate."""
    options = {"scse": True, "hypercolumn": True, "deep_supervision": True}
    model = build_model(config("resnet50", "FPN", size=64, input={"channels": 3}, **options))
    assert model.output.shape[-1] == 1 + 4 + 1  # mask, FPN's four pyramid heads, empty head
    path = tmp_path / "fpn.keras"
    with_sigmoid(model).save(path)
    x = np.random.default_rng(1).random((2, 64, 64, 3)).astype("float32")
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), with_sigmoid(model).predict(x, verbose=0), atol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_every_decoder(backbone):
    """Every registered backbone under every decoder, at 101 and 128 px, with skips at the
    strides the registry says."""
    for type_ in sorted(DECODERS):
        for size in (101, 128):
            model = build_model(config(backbone, type_, size=size))
            assert predict_shape(model, size) == (2, size, size, 1), (type_, size)
    encoder = model.get_layer("encoder")
    sizes = [output.shape[1] for output in encoder.outputs]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) in (4, 5)
    if backbone != "inceptionresnetv2":  # valid padding: sizes in between
        assert sizes[-1] == 4 and all(s in (64, 32, 16, 8, 4) for s in sizes)


def train_original(tmp_path_factory, path: Path, backend: str) -> dict:
    """One fold of an original encoder config, as written except: random weights, one epoch per
    stage (the first frozen), 101 px input, on 48 synthetic images."""
    from tgssalt.synthetic import generate_dataset

    root = tmp_path_factory.mktemp(f"{path.stem}-{backend}")
    generate_dataset(root / "data", n_train=48, n_test=8, seed=3)
    user = json.loads(path.read_text())
    user["encoder"]["weights"] = None
    user["input"]["size"] = 101
    user["stage1"].update(epochs=2, epochs_weights_frozen=1, batch_size=8)
    user["stage2"].update(epochs=1, batch_size=8)
    (root / "config.json").write_text(json.dumps(user))
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_PLATFORMS": "cpu",
    }
    args = ["--config-file", str(root / "config.json"), "--cv-currentfold", "0"]
    args += ["--data-folder", str(root / "data"), "--outputs-folder", str(root / "out")]
    done = subprocess.run(
        [sys.executable, str(CODE / "train_fold.py"), *args],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = next((root / "out" / "models").glob("*-metrics.json"))
    return json.loads(metrics.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@pytest.mark.parametrize("path", ORIGINAL, ids=lambda p: p.stem.rsplit("-", 1)[-1])
def test_original_encoder_configs_train_end_to_end(tmp_path_factory, path, backend):
    metrics = train_original(tmp_path_factory, path, backend)
    assert 0 <= metrics["validation_score"] <= 1


def test_original_configs_build_at_224_as_written():
    """The original's configs at their 224 px (weights null: no network here)."""
    user = json.loads((CONFIG_FOLDER / "unet-pretrained-encoder-resnet34.json").read_text())
    user["encoder"]["weights"] = None
    model = build_model(resolve_config(user))
    assert predict_shape(model, 224, channels=3) == (2, 224, 224, 1)
