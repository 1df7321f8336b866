"""Top-solution techniques on hand-made arrays and tiny runs: coordinate (depth) and cumsum
channels, deep supervision with an empty-mask head (both model families, saved and reloaded),
cosine cycles with snapshot averaging (resumable)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from crashing import CrashAtEpoch, train_stage1
from tgssalt import fold_training as fold_module
from tgssalt.config import StageConfig, resolve_config
from tgssalt.errors import UserError
from tgssalt.inference import predict_probs
from tgssalt.keras_metrics import competition_score_ops
from tgssalt.losses import EMPTY_WEIGHT, LEVEL_WEIGHT, bce, deep_supervised, get_loss
from tgssalt.models import build_model, heads, with_sigmoid
from tgssalt.models.layers import (
    CoordChannels,
    CumsumChannel,
    GatedSaltProbability,
    SaltHeadProbabilities,
)
from tgssalt.paths import CONFIG_FOLDER
from tgssalt.resume import load_state
from tgssalt.snapshots import cosine_lr
from tgssalt.synthetic import generate_dataset

CODE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_coord_channels_are_row_depth_and_image_times_depth():
    images = np.full((2, 3, 4, 1), 0.5, "float32")
    out = numpy(CoordChannels()(images))
    assert out.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(out[..., 0], 0.5)
    np.testing.assert_allclose(out[0, :, 0, 1], [0.0, 0.5, 1.0])  # top row 0, bottom row 1
    np.testing.assert_allclose(out[1, :, 3, 2], [0.0, 0.25, 0.5])
    assert np.all(out[:, 1, :, 1] == 0.5)  # constant along a row


def test_cumsum_channel_is_the_centred_image_summed_down_each_column():
    image = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], "float32")  # mean 1/3
    images = np.stack([image, np.full_like(image, 0.7)])[..., None]
    out = numpy(CumsumChannel()(images))
    assert out.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(out[..., 0], images[..., 0])  # the image passes through
    # column 0 centred: 2/3, -1/3, 2/3 -> running sums 2/3, 1/3, 1 -> over the height 3
    np.testing.assert_allclose(out[0, :, 0, 1], [2 / 9, 1 / 9, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 1, 1], [-1 / 9, -2 / 9, -1 / 3], rtol=1e-6)
    np.testing.assert_allclose(out[1, ..., 1], 0.0, atol=1e-6)  # a uniform image: no context


def test_cumsum_channel_follows_the_coord_channels_and_is_refused_with_an_encoder(tmp_path):
    model = build_model(tiny(input={"coord_channels": True, "cumsum_channel": True}))
    assert model.get_layer("cumsum_channel").output.shape[-1] == 4  # image, depth, product, sum
    x = np.random.default_rng(0).random((2, 101, 101, 1)).astype("float32")
    with_sigmoid(model).save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), with_sigmoid(model).predict(x, verbose=0), atol=1e-6
    )
    encoder = {"backbone": "resnet34", "weights": None}
    with pytest.raises(UserError, match="input.cumsum_channel"):
        resolve_config({"input": {"size": 64, "cumsum_channel": True}, "encoder": encoder})


def packed(mask_logit: float, level_logit: float, empty_logit: float, size=4) -> np.ndarray:
    """One image's packed logits: mask, two level heads, the empty head."""
    values = [mask_logit, level_logit, level_logit, empty_logit]
    return np.broadcast_to(np.array(values, "float32"), (1, size, size, 4)).copy()


def test_heads_pack_and_unpack_round_trip():
    """`heads.pack` builds the packed output, `heads.unpack` gives back its parts."""
    rng = np.random.default_rng(0)
    mask = rng.normal(size=(2, 5, 5, 1)).astype("float32")
    levels = [rng.normal(size=(2, 5, 5, 1)).astype("float32") for _ in range(3)]
    empty = np.array([[1.5], [-2.0]], "float32")
    packed_logits = heads.pack(mask, levels, empty)
    assert packed_logits.shape == (2, 5, 5, 1 + 3 + 1) and heads.is_packed_tensor(packed_logits)
    got_mask, got_levels, got_empty = heads.unpack(packed_logits)
    np.testing.assert_array_equal(numpy(got_mask), mask)
    assert len(got_levels) == 3
    for got, want in zip(got_levels, levels, strict=True):
        np.testing.assert_array_equal(numpy(got), want)
    np.testing.assert_allclose(numpy(got_empty), empty)
    assert not heads.is_packed_tensor(mask)


def test_has_salt_is_one_definition_for_truth_and_empty_head():
    """Any value above 0.5: a salt pixel of a true mask, or the empty head's probability."""
    truth = np.zeros((3, 4, 4, 1), "float32")
    truth[1, 2, 3] = 1.0
    truth[2] = 0.5  # not above one half: no salt
    np.testing.assert_array_equal(numpy(heads.has_salt(truth)), [0.0, 1.0, 0.0])
    empty_probability = np.array([[0.7], [0.2], [0.5]], "float32")
    np.testing.assert_array_equal(numpy(heads.has_salt(empty_probability)), [1.0, 0.0, 0.0])


def test_exported_heads_are_the_mask_and_salt_probabilities():
    probs = numpy(SaltHeadProbabilities()(packed(2.0, -1.0, -3.0)))
    assert probs.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(probs[..., 0], 1 / (1 + np.exp(-2.0)), rtol=1e-6)
    np.testing.assert_allclose(probs[..., 1], 1 / (1 + np.exp(3.0)), rtol=1e-6)


class FlipSensitiveHeads:
    """A stand-in probability model: mask 0.9 everywhere; the empty head says "salt" with
    `left` on images brighter on the left and `right` on their mirror images."""

    def __init__(self, left: float, right: float):
        self.left, self.right = left, right

    def predict(self, x, batch_size=None, verbose=0):
        brighter_left = x[:, :, : x.shape[2] // 2].mean() > x[:, :, x.shape[2] // 2 :].mean()
        salt = np.full(x.shape[:3] + (1,), self.left if brighter_left else self.right, "float32")
        return np.concatenate([np.full_like(salt, 0.9), salt], axis=-1)


def test_prediction_gates_the_flip_average_once():
    """0.7 and 0.2 from the two flips average 0.45: no salt, though one flip alone said salt;
    0.7 and 0.4 average 0.55: the averaged mask is kept whole."""
    config = tiny(input={"size": 32}, tta={"hflip": True})
    images = np.zeros((1, 101, 101, 1), "uint8")
    images[:, :, :50] = 200
    assert predict_probs(FlipSensitiveHeads(0.7, 0.2), images, config).max() == 0
    kept = predict_probs(FlipSensitiveHeads(0.7, 0.4), images, config)
    np.testing.assert_allclose(kept, 0.9, rtol=1e-5)


def test_legacy_gate_empties_images_the_empty_head_calls_empty():
    """Models exported with `GatedSaltProbability` gate each output before any average."""
    salt = numpy(GatedSaltProbability()(packed(2.0, 0.0, 3.0)))
    empty = numpy(GatedSaltProbability()(packed(2.0, 0.0, -3.0)))
    assert salt.shape == (1, 4, 4, 1)
    np.testing.assert_allclose(salt, 1 / (1 + np.exp(-2.0)), rtol=1e-6)
    assert np.all(empty == 0)


def test_gated_metric_scores_the_prediction_as_it_is_made():
    """An empty truth with a confident mask scores 0 ungated and 1 once the head empties it."""
    truth = np.zeros((1, 4, 4, 1), "float32")
    ungated = competition_score_ops(truth, packed(5.0, 0.0, 3.0), from_logits=True)
    gated = competition_score_ops(truth, packed(5.0, 0.0, -3.0), from_logits=True)
    assert numpy(ungated)[0] == 0.0 and numpy(gated)[0] == 1.0


def test_deep_supervised_loss_by_hand():
    """Empty truth: final mask loss + empty-head BCE only; salt: the level heads count too."""
    loss = deep_supervised(bce)
    bce_of = lambda y, z: np.log1p(np.exp(-z)) if y else np.log1p(np.exp(z))  # noqa: E731
    empty = np.zeros((1, 4, 4, 1), "float32")
    got = numpy(loss(empty, packed(-1.0, 2.0, -0.5)))[0]
    assert got == pytest.approx(bce_of(0, -1.0) + EMPTY_WEIGHT * bce_of(0, -0.5), rel=1e-5)
    salt = np.ones((1, 4, 4, 1), "float32")
    got = numpy(loss(salt, packed(1.0, 2.0, 0.5)))[0]
    want = bce_of(1, 1.0) + 2 * LEVEL_WEIGHT * bce_of(1, 2.0) + EMPTY_WEIGHT * bce_of(1, 0.5)
    assert got == pytest.approx(want, rel=1e-5)
    assert get_loss("bce") is bce and get_loss("lovasz", True).__name__.endswith("lovasz_hinge")


def test_empty_mask_weight_scales_the_mask_loss_on_empty_images_only():
    """Weight 0.25: an empty image's final-mask loss counts a quarter, its empty-head BCE fully;
    an image with salt scores as at weight 1."""
    bce_of = lambda y, z: np.log1p(np.exp(-z)) if y else np.log1p(np.exp(z))  # noqa: E731
    full, quarter = get_loss("bce", True), get_loss("bce", True, empty_mask_weight=0.25)
    empty = np.zeros((1, 4, 4, 1), "float32")
    got = numpy(quarter(empty, packed(1.5, 2.0, 0.5)))[0]
    assert got == pytest.approx(0.25 * bce_of(0, 1.5) + EMPTY_WEIGHT * bce_of(0, 0.5), rel=1e-5)
    salt = np.ones((1, 4, 4, 1), "float32")
    logits = packed(-1.0, 0.5, 0.5)
    assert numpy(quarter(salt, logits))[0] == pytest.approx(numpy(full(salt, logits))[0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"model": {"deep_supervision": True}, "stage2": {"empty_mask_weight": 1.5}},
            "'stage2.empty_mask_weight' must be in [0, 1]",
        ),
        (
            {"stage1": {"empty_mask_weight": 0.5}},
            "'stage1.empty_mask_weight' does not apply: needs model.deep_supervision",
        ),
    ],
)
def test_empty_mask_weight_is_checked(options, message):
    with pytest.raises(UserError) as info:
        resolve_config(options)
    assert message in str(info.value)


def tiny(**options) -> dict:
    model = {"start_filters": 4, "depth": 3, **options.pop("model", {})}
    return resolve_config({"model": model, **options})


def test_unet_resnet_packs_one_head_per_coarse_level_and_saves(tmp_path):
    model = build_model(tiny(model={"deep_supervision": True}, input={"coord_channels": True}))
    x = np.random.default_rng(0).random((2, 101, 101, 1)).astype("float32")
    assert model.predict(x, verbose=0).shape == (2, 101, 101, 1 + 2 + 1)  # depth 3: 2 coarse
    assert model.get_layer("coord_channels") is not None
    path = tmp_path / "m.keras"
    with_sigmoid(model).save(path)
    loaded = keras.saving.load_model(path, compile=False)
    probs = loaded.predict(x, verbose=0)
    assert probs.shape == (2, 101, 101, 2)  # the mask's and the empty head's probabilities
    np.testing.assert_allclose(probs, with_sigmoid(model).predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("type_", ["Unet", "FPN", "Linknet"])
def test_encoder_models_take_deep_supervision_and_coord_channels(type_):
    config = resolve_config(
        {
            "input": {"size": 64, "coord_channels": True},
            "model": {"start_filters": 4, "deep_supervision": True},
            "encoder": {"type": type_, "backbone": "resnet34", "weights": None},
        }
    )
    model = build_model(config)
    out = model.predict(np.zeros((1, 64, 64, 1), "float32"), verbose=0)
    assert out.shape[:3] == (1, 64, 64) and out.shape[-1] >= 1 + 3 + 1
    assert model.get_layer("coord_channels").output.shape[-1] == 3


def test_coord_channels_refused_for_rgb_encoder_input():
    with pytest.raises(UserError, match="input.coord_channels"):
        resolve_config(
            {
                "input": {"channels": 3, "coord_channels": True},
                "encoder": {"backbone": "resnet34", "weights": None},
            }
        )


def test_deep_supervision_trains_and_beats_the_empty_baseline():
    """Half the images empty, half with a bright salt block: the packed model learns both the
    masks and, through its empty head, which images have none."""
    rng = np.random.default_rng(0)
    n, size = 64, 32
    x = rng.normal(0.3, 0.05, (n, size, size, 1)).astype("float32")
    y = np.zeros((n, size, size, 1), "float32")
    for i in range(0, n, 2):
        r, c = rng.integers(4, 16, 2)
        y[i, r : r + 12, c : c + 12] = 1
    x += 0.5 * y
    keras.utils.set_random_seed(0)
    model = build_model(
        tiny(model={"deep_supervision": True, "dropout": 0.0}, input={"size": size})
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=get_loss("bce", True))
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    probs = with_sigmoid(model).predict(x, verbose=0)
    score = np.mean(numpy(competition_score_ops(y, probs)))
    empty_baseline = 0.5
    assert score > empty_baseline + 0.3
    gated = numpy(heads.gated_probability(probs, from_logits=False))
    assert np.mean(gated[1::2].max(axis=(1, 2, 3)) == 0) > 0.8  # gated to exactly empty


def test_cosine_lr_by_hand():
    stage = StageConfig(epochs=6, cycles=2, learning_rate=1e-3, min_lr=0.0, schedule="cosine")
    rates = [cosine_lr(e, stage) for e in range(6)]
    np.testing.assert_allclose(rates[:3], [1e-3, 0.75e-3, 0.25e-3], rtol=1e-9)
    assert rates[3:] == rates[:3]  # the warm restart


COSINE = {
    "input": {"size": 32},
    "model": {"start_filters": 4, "depth": 2},
    "stage1": {"epochs": 4, "batch_size": 8, "schedule": "cosine", "cycles": 2},
}


def test_cosine_cycles_keep_snapshots_and_export_their_average(tmp_path, monkeypatch):
    monkeypatch.setattr(fold_module, "MlflowMetrics", CrashAtEpoch)
    model, config, out, x = train_stage1(tmp_path / "whole", "cos-cvfold0", COSINE, None, 0.6)
    state = load_state(out.resume("stage1")).record
    np.testing.assert_allclose(
        state.history["learning_rate"], [cosine_lr(e, config.stage1) for e in range(4)]
    )
    snapshots = sorted((tmp_path / "whole" / "models").glob("*snapshot*.weights.h5"))
    assert [p.name for p in snapshots] == [
        f"cos-cvfold0-stage1-snapshot{k}.weights.h5" for k in (1, 2)
    ]
    exported = keras.saving.load_model(out.model("stage1"), compile=False)
    members = []
    for path in snapshots:
        member = keras.models.clone_model(model)
        member.load_weights(path)
        members.append(with_sigmoid(member).predict(x[:4], verbose=0))
    np.testing.assert_allclose(exported.predict(x[:4], verbose=0), np.mean(members, 0), atol=1e-5)
    assert not np.allclose(members[0], members[1])  # two different minima
    resumed = train_stage1(tmp_path / "crashed", "cos-cvfold0", COSINE, 2, 0.6)[2]
    again = load_state(resumed.resume("stage1")).record.history
    assert again["val_score"] == state.history["val_score"]
    assert again["loss"] == state.history["loss"]


# (input size, images, stage-1 and stage-2 epochs, margin over the all-empty baseline). The
# default run checks the wiring in seconds (no margin: 2 epochs learn nothing yet); the slow run
# checks learning: this deep-supervised net sits at the all-empty baseline for its first ~8
# epochs at 101 px, and at 15 epochs whether it got past it in time depended on the thread count.
TECHNIQUES_RUNS = [
    pytest.param(48, 90, (2, 2), None, id="wiring"),
    pytest.param(101, 300, (25, 4), 0.05, id="learns", marks=pytest.mark.slow),
]


def _shrunk_best(size: int, epochs: tuple[int, int]) -> dict:
    """`best.json` with all its techniques, on a tiny model and schedule."""
    best = json.loads((CONFIG_FOLDER / "best.json").read_text())
    best["name"] = "techniques-%s"
    best["crossvalidation"] = {"folds": 3}
    best["input"]["size"] = size  # the 101 px images resized; predictions resized back
    best["model"].update(start_filters=8, depth=3, dropout=0.1)
    best["stage1"].update(
        epochs=epochs[0],
        batch_size=8,
        early_stopping_patience=epochs[0],
        reduce_lr_patience=4,
    )
    best["stage2"].update(epochs=epochs[1], batch_size=8, cycles=2)
    return best


@pytest.mark.parametrize("size, n_images, epochs, margin", TECHNIQUES_RUNS)
def test_best_config_techniques_train_a_fold_end_to_end(tmp_path, size, n_images, epochs, margin):
    """`best.json`'s techniques, shrunk, through `train_fold.py`: the fold is scored (and, with a
    margin, beats the all-empty baseline), stage 2 exports its two snapshots' average, and the
    snapshot weight files are cleaned up with the other checkpoints."""
    generate_dataset(tmp_path / "data", n_train=n_images, n_test=20, seed=2)
    config = tmp_path / "techniques.json"
    config.write_text(json.dumps(_shrunk_best(size, epochs)))
    out = tmp_path / "outputs"
    command = [sys.executable, str(CODE / "train_fold.py"), "--config-file", str(config)]
    command += ["--cv-currentfold", "0", "--data-folder", str(tmp_path / "data")]
    done = subprocess.run(
        [*command, "--outputs-folder", str(out)], capture_output=True, text=True, env=ENV
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "models" / "techniques-1-cvfold0-metrics.json").read_text())
    assert 0 <= metrics["empty_baseline_score"] < 1 and 0 <= metrics["validation_score"] <= 1
    if margin is not None:
        assert metrics["validation_score"] > metrics["empty_baseline_score"] + margin
    model = keras.saving.load_model(out / "models" / "techniques-1-cvfold0-stage2.keras")
    assert [layer.name for layer in model.layers[1:3]] == ["snapshot1", "snapshot2"]
    assert not list((out / "models").glob("*.weights.h5"))
