"""predict.py: finding a run's models and threshold, resizing, masks and the RLE CSV.

Models are tiny and untrained: a 2-filter U-Net (as `fold.py` saves it, with its sigmoid) and a
1x1 convolution whose output is exactly "pixel brighter than 127.5", so masks can be checked.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from fakes import config_for, masks_for
from PIL import Image
from tgssalt.config import save_config
from tgssalt.errors import UserError
from tgssalt.layout import Outputs
from tgssalt.metrics import binarize
from tgssalt.models import build_model, with_sigmoid
from tgssalt.predict_images import (
    Postprocessing,
    _override,
    postprocessing,
    predict_images,
    resolve_model_paths,
    to_masks,
)
from tgssalt.rle import rle_decode
from tgssalt.splits import save_split
from tgssalt.submission import validate_submission

CODE = Path(__file__).resolve().parents[1]


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """An outputs folder with run fake-1: fold 0 at stage 2, fold 1 only at stage 1."""
    out = tmp_path_factory.mktemp("outputs")
    (out / "models").mkdir()
    config = config_for()
    unet = with_sigmoid(build_model(config))
    for fold, stage, threshold in ((0, "stage2", 0.4), (1, "stage1", 0.6)):
        run = f"fake-1-cvfold{fold}"
        unet.save(out / "models" / f"{run}-{stage}.keras")
        save_config(config, out / "models" / f"{run}-config.json")
        (out / "models" / f"{run}-metrics.json").write_text(json.dumps({"threshold": threshold}))
    ids, masks = np.array([f"i{k}" for k in range(6)]), masks_for(6, 0)
    save_split(Outputs(out).split_file("fake-1"), ids, masks, np.arange(6) % 3)  # 3 folds
    return out


@pytest.fixture(scope="module")
def bright_model(tmp_path_factory) -> Path:
    """A probability model saying salt exactly where a pixel is brighter than 127.5."""
    inputs = keras.Input((101, 101, 1))
    logits = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros")(inputs)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))
    model.layers[1].set_weights([np.full((1, 1, 1, 1), 40.0), np.array([-20.0])])
    path = tmp_path_factory.mktemp("bright") / "bright-stage2.keras"
    model.save(path)
    return path


def test_run_name_finds_fold_models_and_mean_threshold(outputs, capsys):
    models = outputs / "models"
    paths = resolve_model_paths(["fake-1"], outputs)
    assert paths == [models / "fake-1-cvfold0-stage2.keras", models / "fake-1-cvfold1-stage1.keras"]
    assert "warning: fold(s) 2 of fake-1" in capsys.readouterr().err  # the split has 3 folds
    post = postprocessing(["fake-1"], paths, outputs)
    assert (post.threshold, post.min_area) == (pytest.approx(0.5), 0) and "mean" in post.source
    assert resolve_model_paths(["fake-1-cvfold1"], outputs) == [paths[1]]
    with pytest.raises(UserError, match="no model other-1-cvfold<k>-stage2.keras"):
        resolve_model_paths(["other-1"], outputs)
    with pytest.raises(UserError, match="absent.keras: model file not found"):
        resolve_model_paths(["absent.keras"], outputs)


def test_ensemble_json_gives_threshold_and_min_area(outputs, tmp_path):
    paths = resolve_model_paths(["fake-1"], outputs)
    summary = outputs / "models" / "fake-1-ensemble.json"
    summary.write_text(json.dumps({"threshold": 0.45, "min_area": 30}))
    try:
        post = postprocessing(["fake-1"], paths, outputs)
        summary.write_text(json.dumps({"threshold": 0.45, "min_area": 30, "peak_threshold": 0.6}))
        peaked = postprocessing(["fake-1"], paths, outputs)
    finally:
        summary.unlink()
    assert (post.threshold, post.min_area, post.source, post.peak) == (0.45, 30, str(summary), None)
    assert (peaked.threshold, peaked.peak) == (0.45, 0.6)
    assert _override(peaked, {"min_area": 5}).peak == 0.6  # tuned with this threshold: kept
    assert _override(peaked, {"threshold": 0.4}).peak is None  # another threshold: dropped


def test_hysteresis_peak_applies_at_every_size():
    probs = np.zeros((2, 101, 101), np.float32)
    probs[:, 10:30, 10:30] = 0.6  # a faint body: dropped
    probs[:, 50:80, 50:80] = 0.6  # a faint body ...
    probs[:, 60:70, 60:70] = 0.9  # ... around a sure core: kept whole
    square, tall = to_masks(probs, [(101, 101), (202, 150)], Postprocessing(0.5, 0, "", 0.7))
    assert square.sum() == 900 and square[50:80, 50:80].all()
    assert tall.shape == (202, 150) and not tall[20:60, 15:45].any()
    assert tall[105:155, 78:115].all()


def test_unet_folds_predict_a_valid_submission(outputs, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 101, 101), np.uint8)
    for k, image in enumerate(images):
        _save_png(tmp_path / "in" / f"img{k}.png", image)
    csv = predict_images(["fake-1"], tmp_path / "in", tmp_path / "out", outputs)
    df = validate_submission(csv, expected_ids=["img0", "img1", "img2"])
    # The same as the two saved models averaged with flip TTA and thresholded at 0.5.
    x = images[..., None].astype("float32") / 255
    probs = []
    for path in resolve_model_paths(["fake-1"], outputs):
        model = keras.saving.load_model(path, compile=False)
        flipped = model.predict(x[:, :, ::-1], verbose=0)[:, :, ::-1]
        probs.append((model.predict(x, verbose=0) + flipped) / 2)
    expected = binarize(np.mean(probs, axis=0)[..., 0], 0.5)
    for k, rle in enumerate(df["rle_mask"]):
        png = np.asarray(Image.open(tmp_path / "out" / f"img{k}.png")) // 255
        assert (png == rle_decode(rle)).all()
        assert np.mean(png != expected[k]) < 1e-3  # float rounding may flip a pixel or two


def test_any_size_is_resized_both_ways(bright_model, tmp_path, capsys):
    sizes = {"square": (101, 101), "tall": (202, 150), "small": (60, 80)}
    truth = {}
    for name, (h, w) in sizes.items():
        image = np.zeros((h, w), np.uint8)
        image[h // 4 : h // 2, w // 3 : 2 * w // 3] = 255
        truth[name] = image > 0
        _save_png(tmp_path / "in" / f"{name}.png", image)
    csv = predict_images([str(bright_model)], tmp_path / "in", tmp_path / "out", tmp_path)
    df = pd.read_csv(csv, dtype=str, keep_default_na=False).set_index("id")
    for name, (h, w) in sizes.items():
        mask = np.asarray(Image.open(tmp_path / "out" / f"{name}.png")) > 0
        assert mask.shape == (h, w)
        iou = (mask & truth[name]).sum() / (mask | truth[name]).sum()
        assert iou > 0.9
        assert (rle_decode(df.loc[name, "rle_mask"], (h, w)) == mask).all()
        assert (int(df.loc[name, "height"]), int(df.loc[name, "width"])) == (h, w)
    err = capsys.readouterr().err
    assert err.count("note: 2 of 3 images are not 101x101") == 1


def test_min_area_and_threshold_flags(bright_model, tmp_path):
    image = np.zeros((101, 101), np.uint8)
    image[10:13, 10:13] = 255  # a 9-pixel speck
    _save_png(tmp_path / "in" / "speck.png", image)
    spec = importlib.util.spec_from_file_location("predict_cli", CODE / "predict.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    for min_area, pixels in ((None, 9), (10, 0)):
        flags = [] if min_area is None else ["--min-area", str(min_area)]
        cli.main(
            ["--models", str(bright_model), "--images", str(tmp_path / "in")]
            + ["--out", str(tmp_path / "out"), "--no-tta", *flags]
        )
        assert (np.asarray(Image.open(tmp_path / "out" / "speck.png")) > 0).sum() == pixels


def test_refuses_bad_folders(bright_model, tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(UserError, match="no images"):
        predict_images([str(bright_model)], tmp_path / "in", tmp_path / "out", tmp_path)
    with pytest.raises(UserError, match="must not be the image folder"):
        predict_images([str(bright_model)], tmp_path / "in", tmp_path / "in", tmp_path)
    (tmp_path / "in" / "broken.png").write_text("not a png")
    with pytest.raises(UserError, match="broken.png: cannot read image"):
        predict_images([str(bright_model)], tmp_path / "in", tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()


def test_cli_error_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(CODE / "predict.py"), "--models", "x.keras", "--images",
         str(tmp_path / "absent"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: ") and "image folder not found" in done.stderr


def _pixel_model(path: Path, sign: float) -> None:
    """A probability model saying salt where a pixel is brighter (sign 1) or darker (-1) than
    127.5, saved as a fold model of a run."""
    inputs = keras.Input((101, 101, 1))
    logits = keras.layers.Conv2D(1, 1)(inputs)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))
    model.layers[1].set_weights([np.full((1, 1, 1, 1), 40.0 * sign), np.array([-20.0 * sign])])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def test_blend_run_weights_its_members_models(tmp_path):
    """Member a says bright pixels are salt, member b dark ones: the heavier member wins."""
    out = tmp_path / "outputs"
    _pixel_model(out / "models" / "a-1-cvfold0-stage2.keras", 1.0)
    _pixel_model(out / "models" / "b-1-cvfold0-stage2.keras", -1.0)
    _pixel_model(out / "models" / "b-1-cvfold1-stage2.keras", -1.0)
    image = np.zeros((101, 101), np.uint8)
    image[:40] = 255
    _save_png(tmp_path / "in" / "half.png", image)
    summary = out / "models" / "a-1+b-1-blend.json"
    members = [{"run": "a-1"}, {"run": "b-1"}]
    for weights, salt in (([0.7, 0.3], image > 0), ([0.3, 0.7], image == 0)):
        summary.write_text(json.dumps({"members": members, "weights": weights, "threshold": 0.5,
                                       "min_area": 0}))  # fmt: skip
        paths = resolve_model_paths(["a-1+b-1-blend"], out)
        assert [p.name.split("-")[0] for p in paths] == ["a", "b", "b"]
        predict_images(["a-1+b-1-blend"], tmp_path / "in", tmp_path / "out", out)
        assert ((np.asarray(Image.open(tmp_path / "out" / "half.png")) > 0) == salt).all()
    with pytest.raises(UserError, match="a-1\\+b-1-blend: a blend run must be the only --models"):
        resolve_model_paths(["a-1+b-1-blend", "a-1"], out)
    with pytest.raises(UserError, match="c-1-blend.json: missing; blend the runs first"):
        resolve_model_paths(["c-1-blend"], out)
