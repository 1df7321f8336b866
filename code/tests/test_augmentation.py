"""Input modes (`input.mode` resize or pad) and the geometric augmentation of `AugmentedBatches`."""

import hashlib

import numpy as np
import pytest
from tgssalt.config import PAD_MODES, AugmentationConfig, InputConfig, override, resolve_config
from tgssalt.errors import UserError
from tgssalt.inference import predict_probs
from tgssalt.pipeline import (
    AugmentedBatches,
    mask_targets,
    pad_and_crop,
    preprocess,
    warp_affine,
)
from tgssalt.sizes import margins, to_model_size, to_original_size

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (3, 101, 101, 1), dtype=np.uint8)


# ---- input.mode "pad": padding and cropping -------------------------------------------------


@pytest.mark.parametrize("pad_mode", PAD_MODES)
@pytest.mark.parametrize("size", [101, 102, 128])
def test_pad_then_crop_gives_back_the_image_exactly(pad_mode, size):
    spec = InputConfig(size=size, mode="pad", pad_mode=pad_mode)
    x = IMAGES.astype(np.float32) / 255
    padded = to_model_size(x, spec)
    assert padded.shape == (3, size, size, 1)
    np.testing.assert_array_equal(to_original_size(padded, spec), x[..., 0])
    np.testing.assert_array_equal(to_original_size(padded[..., 0], spec), x[..., 0])


def test_pad_modes_fill_the_border_as_named():
    x = IMAGES.astype(np.float32)
    (top, _), (left, _) = margins(101, 128)
    assert (top, left) == (13, 13)
    modes = ("reflect", "edge", "zero")
    got = {m: to_model_size(x, InputConfig(128, mode="pad", pad_mode=m)) for m in modes}
    np.testing.assert_array_equal(got["reflect"][:, top - 1, left:-14], x[:, 1])
    np.testing.assert_array_equal(got["edge"][:, :top, left:-14], np.repeat(x[:, :1], top, 1))
    assert not got["zero"][:, :top].any() and not got["zero"][:, -14:].any()


def test_masks_are_padded_like_their_images_and_stay_binary():
    config = resolve_config({"input": {"size": 128, "mode": "pad"}})
    masks = (IMAGES[..., 0] > 128).astype(np.uint8)
    targets = mask_targets(masks, config)
    images = preprocess(masks[..., None] * np.uint8(255), config)
    np.testing.assert_array_equal(targets, images)
    assert set(np.unique(targets)) == {0.0, 1.0}


class _Identity:
    """A 'model' whose probabilities are its input: shows what prediction crops or resizes."""

    def predict(self, x, batch_size, verbose):
        return x.copy()


@pytest.mark.parametrize("mode", ["pad", "resize"])
def test_prediction_comes_back_at_101_px(mode):
    config = resolve_config({"input": {"size": 128, "mode": mode}})
    probs = predict_probs(_Identity(), IMAGES, config)
    assert probs.shape == (3, 101, 101)
    want = IMAGES[..., 0] / np.float32(255)
    if mode == "pad":  # no interpolation at all: the image itself, TTA included
        np.testing.assert_array_equal(probs, want)
    else:
        assert 0 < np.abs(probs - want).max() < 0.5


def test_resize_mode_is_unchanged_by_pad_mode_keys_at_their_default():
    resized = resolve_config({"input": {"size": 64}})
    saved = resolve_config(resized.to_dict() | {"version": 1})  # every key set, as a fold saves
    assert saved.input == resized.input
    x = preprocess(IMAGES, saved)
    assert x.shape == (3, 64, 64, 1)


# ---- config errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user, message",
    [
        ({"input": {"mode": "pad", "size": 96}}, "key 'input.size' must be >= 101 with"),
        ({"input": {"pad_mode": "zero"}}, "key 'input.pad_mode' does not apply"),
        ({"input": {"mode": "crop"}}, "key 'input.mode': unknown name 'crop' (known: pad, resize)"),
        (
            {"input": {"mode": "pad", "size": 128, "pad_mode": "wrap"}},
            "unknown name 'wrap' (known: edge, reflect, zero)",
        ),
        ({"augmentation": {"shift": -0.1}}, "key 'augmentation.shift' must be in"),
        ({"augmentation": {"scale": 1.0}}, "key 'augmentation.scale' must be in"),
        ({"augmentation": {"rotate": 200}}, "key 'augmentation.rotate' must be in"),
        ({"augmentation": {"pad_crop": 101}}, "key 'augmentation.pad_crop' must be in"),
    ],
)
def test_bad_input_and_augmentation_keys_are_refused(user, message):
    with pytest.raises(UserError) as info:
        resolve_config(user)
    assert message in str(info.value)


def test_pad_mode_applies_once_the_mode_is_pad():
    config = override(resolve_config({"input": {"size": 128}}), {"input": {"mode": "pad"}})
    config = override(config, {"input": {"pad_mode": "edge"}})
    assert (config.input.mode, config.input.pad_mode) == ("pad", "edge")


# ---- geometric augmentation ------------------------------------------------------------------


def _square(n: int = 4, size: int = 32) -> np.ndarray:
    """(n, size, size, 1) 0/1 images: a 6 x 8 block at rows 10..15, columns 12..19."""
    x = np.zeros((n, size, size, 1), np.float32)
    x[:, 10:16, 12:20] = 1
    return x


def test_a_known_affine_shift_moves_the_square_by_that_many_pixels():
    xy = np.concatenate([_square(1), _square(1)], axis=-1)
    moved = warp_affine(xy, np.array([[[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]]))  # x +3, y -2
    want = np.zeros((32, 32), np.float32)
    want[8:14, 15:23] = 1
    for channel in range(2):
        np.testing.assert_array_equal(moved[0, ..., channel], want)
    one = warp_affine(_square(1), np.array([[[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]]))
    np.testing.assert_array_equal(one[0, ..., 0], want)  # a single channel is warped too


def test_pad_and_crop_is_a_translation_with_reflected_borders():
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8, 1)
    out = pad_and_crop(x, 3, np.array([[3, 3], [5, 1]]))
    np.testing.assert_array_equal(out[0], x[0])  # the centre window: no move
    np.testing.assert_array_equal(out[1, :6, 2:], x[1, 2:, :6])  # 2 rows up, 2 columns right
    np.testing.assert_array_equal(out[1, :, 1], x[1, [2, 3, 4, 5, 6, 7, 6, 5], 1])  # reflected
    xy = np.concatenate([x, -x], axis=-1)
    np.testing.assert_array_equal(pad_and_crop(xy, 3, np.array([[3, 3], [5, 1]]))[..., :1], out)


@pytest.mark.parametrize(
    "aug",
    [
        AugmentationConfig(hflip=False, shift=0.2),
        AugmentationConfig(scale=0.3, rotate=25),
        AugmentationConfig(pad_crop=6, shift=0.1, scale=0.1, rotate=10),
    ],
    ids=["shift", "scale-rotate", "all"],
)
def test_image_and_mask_move_together_and_masks_stay_binary(aug):
    x = _square(8)
    batches = AugmentedBatches(x, x.copy(), 8, aug, seed=2)
    images, masks = batches[0]
    assert set(np.unique(masks)) <= {0.0, 1.0}
    np.testing.assert_array_equal(masks, (images > 0.5).astype(np.float32))
    assert not np.array_equal(images, x[batches.order])  # something moved
    assert (masks.sum(axis=(1, 2, 3)) > 0).all()


def test_geometric_batches_depend_only_on_seed_epoch_and_index():
    x = RNG.random((12, 24, 24, 1), dtype=np.float32)
    y = (x > 0.5).astype(np.float32)
    aug = AugmentationConfig(brightness=0.1, pad_crop=4, shift=0.1, scale=0.1, rotate=10)
    first = AugmentedBatches(x, y, 4, aug, seed=7)
    first.set_epoch(1)
    want = [first[i] for i in range(3)]
    again = AugmentedBatches(x, y, 4, aug, seed=7)
    again.set_epoch(1)
    for i in (2, 0, 1):
        np.testing.assert_array_equal(again[i][0], want[i][0])
        np.testing.assert_array_equal(again[i][1], want[i][1])
    again.set_epoch(2)
    assert not np.array_equal(again[0][0], want[0][0])


def _batches(aug: AugmentationConfig, epoch: int) -> AugmentedBatches:
    x = np.arange(10 * 6 * 6, dtype=np.float32).reshape(10, 6, 6, 1) / 360
    batches = AugmentedBatches(x, (x > 0.5).astype(np.float32), 4, aug, seed=3)
    batches.set_epoch(epoch)
    return batches


def test_default_augmentation_gives_the_batches_it_always_gave():
    """Flips alone: these bytes were recorded before the geometric keys existed."""
    batches, digest = _batches(AugmentationConfig(), 2), hashlib.sha256()
    for i in range(len(batches)):
        for array in batches[i]:
            digest.update(array.tobytes())
    assert digest.hexdigest() == "d22b185669ee548854b2bcf756a7528d8bbd32f69f8b642863615b0cd90e7839"


def test_jitter_draws_are_unchanged():
    """Flips and brightness/contrast jitter as recorded before the geometric keys existed."""
    images, masks = _batches(AugmentationConfig(brightness=0.1, contrast=0.2), 1)[1]
    want = [[4.4065410e-01, 4.4394758e-01], [-2.7231057e-04, 2.5875613e-03]]
    want += [[6.9055122e-01, 6.8801361e-01], [9.6988690e-01, 9.6697062e-01]]
    np.testing.assert_allclose(images[:, 0, :2, 0], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(masks[:, 0, :, 0].sum(1), [5, 0, 6, 6])


def test_predict_py_pads_and_crops_as_the_runs_config_says(tmp_path):
    """A 128 px 'pixel brighter than 127.5' model trained with input.mode pad: its run config
    makes predict.py pad and crop, so single-pixel detail survives exactly (a resize both ways
    would blur it)."""
    import keras
    from PIL import Image
    from tgssalt.config import save_config
    from tgssalt.predict_images import predict_images

    inputs = keras.Input((128, 128, 1))
    conv = keras.layers.Conv2D(1, 1)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(conv(inputs)))
    conv.set_weights([np.full((1, 1, 1, 1), 40.0), np.array([-20.0])])
    (tmp_path / "models").mkdir()
    model.save(tmp_path / "models" / "pad-1-cvfold0-stage2.keras")
    config = resolve_config({"input": {"size": 128, "mode": "pad", "pad_mode": "zero"}})
    save_config(config, tmp_path / "models" / "pad-1-cvfold0-config.json")
    image = (RNG.random((101, 101)) < 0.5).astype(np.uint8) * np.uint8(255)
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "a.png")
    predict_images(["pad-1"], tmp_path / "in", tmp_path / "out", tmp_path)
    mask = np.asarray(Image.open(tmp_path / "out" / "a.png")) > 0
    np.testing.assert_array_equal(mask, image > 0)
