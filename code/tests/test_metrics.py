"""The competition metric: hand-computed cases, threshold search, coverage classes, Keras metric."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from tgssalt.keras_metrics import CompetitionScore, competition_score_ops
from tgssalt.metrics import (
    competition_score,
    coverage_class,
    coverage_report,
    image_scores,
    threshold_search,
)

CODE_DIR = Path(__file__).resolve().parents[1]


def _masks(truth_pixels: int, pred_pixels: int, extra: int = 0, size: int = 10) -> tuple:
    """One-image batches: truth = first `truth_pixels` pixels, pred = first `pred_pixels` of
    them plus `extra` pixels outside the truth (so IoU = pred_pixels / (truth + extra))."""
    truth = np.zeros(size * size, np.uint8)
    pred = np.zeros(size * size, np.uint8)
    truth[:truth_pixels] = 1
    pred[:pred_pixels] = 1
    pred[truth_pixels : truth_pixels + extra] = 1
    return truth.reshape(1, size, size), pred.reshape(1, size, size)


@pytest.mark.parametrize(
    ("truth_px", "pred_px", "extra", "expected"),
    [
        (0, 0, 0, 1.0),  # empty truth, empty prediction
        (0, 0, 5, 0.0),  # empty truth, any salt predicted
        (4, 0, 0, 0.0),  # salt missed entirely
        (7, 7, 0, 1.0),  # perfect
        (2, 1, 0, 0.0),  # IoU 0.5 exactly: not > 0.5
        (3, 2, 0, 0.4),  # IoU 2/3 > 0.50, 0.55, 0.60, 0.65
        (4, 3, 0, 0.5),  # IoU 0.75 > 0.50 ... 0.70, not > 0.75
        (3, 3, 1, 0.5),  # IoU 3/4 from a false positive
        (5, 4, 0, 0.6),  # IoU 0.8 > 0.50 ... 0.75
        (10, 9, 0, 0.8),  # IoU 0.9 > 0.50 ... 0.85
        (20, 19, 0, 0.9),  # IoU 0.95 > 0.50 ... 0.90, not > 0.95
        (40, 39, 0, 1.0),  # IoU 0.975 passes all ten
        (40, 20, 40, 0.0),  # IoU 20/80 = 0.25
    ],
)
def test_hand_computed_image_scores(truth_px: int, pred_px: int, extra: int, expected: float):
    truth, pred = _masks(truth_px, pred_px, extra)
    assert image_scores(truth, pred)[0] == pytest.approx(expected, abs=1e-12)
    assert competition_score(truth[..., None], pred[..., None]) == pytest.approx(expected)


def test_batch_mean_and_shapes() -> None:
    cases = [_masks(0, 0), _masks(4, 3), _masks(5, 4), _masks(4, 0)]
    truth = np.concatenate([c[0] for c in cases])
    pred = np.concatenate([c[1] for c in cases])
    np.testing.assert_allclose(image_scores(truth, pred), [1.0, 0.5, 0.6, 0.0])
    assert competition_score(truth, pred) == pytest.approx(2.1 / 4)
    with pytest.raises(ValueError):
        image_scores(truth, pred[:2])
    with pytest.raises(ValueError):
        image_scores(truth[0], pred[0])


def test_threshold_search_finds_the_clean_band() -> None:
    """Salt at 0.65, a wide halo at 0.45: thresholds in [0.45, 0.65) are perfect, the first
    of them on the grid is 0.46; below it the halo drops IoU under 0.5, above it nothing."""
    truth = np.zeros((2, 101, 101), np.uint8)
    truth[0, 40:60, 40:60] = 1
    probs = np.full(truth.shape, 0.1)
    probs[0, 20:80, 20:80] = 0.45
    probs[truth == 1] = 0.65
    best, score, scores = threshold_search(truth, probs)
    assert best == pytest.approx(0.46)
    assert score == 1.0
    grid = np.linspace(0.2, 0.8, 31)
    np.testing.assert_allclose(scores[grid < 0.45], 0.5)  # only the empty image scores
    np.testing.assert_allclose(scores[(grid > 0.45) & (grid < 0.65)], 1.0)


def test_threshold_search_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    truth, probs = _random_batch(rng, 60)
    thresholds = rng.permutation(np.linspace(0.05, 0.95, 19))  # unsorted on purpose
    best, score, scores = threshold_search(truth, probs, thresholds)
    brute = np.array([competition_score(truth, probs > t) for t in thresholds])
    np.testing.assert_allclose(scores, brute, atol=1e-12)
    assert score == pytest.approx(brute.max())
    assert best == thresholds[np.argmax(brute)]


def test_coverage_class() -> None:
    masks = np.zeros((5, 10, 10), np.uint8)
    masks[1].flat[:1] = 1  # 1% -> 1
    masks[2].flat[:10] = 1  # 10% exactly -> 1
    masks[3].flat[:11] = 1  # 11% -> 2
    masks[4][:] = 1  # 100% -> 10
    np.testing.assert_array_equal(coverage_class(masks), [0, 1, 1, 2, 10])
    assert coverage_class(masks[..., None]).dtype.kind == "i"


def test_coverage_report_splits_the_lost_score_by_class() -> None:
    truth = np.zeros((4, 10, 10), np.uint8)
    pred = np.zeros_like(truth)
    pred[1].flat[:1] = 1  # empty truth, one false pixel: 0
    truth[2].flat[:5] = pred[2].flat[:5] = 1  # 5% found exactly: 1
    truth[3].flat[:50] = 1  # 50% missed: 0
    rows = coverage_report(truth, pred)
    assert [(r["coverage_class"], r["images"]) for r in rows] == [(0, 2), (1, 1), (5, 1)]
    assert [r["predicted_empty"] for r in rows] == [1, 0, 1]
    assert [r["score"] for r in rows] == [0.5, 1.0, 0.0]
    assert [r["loss"] for r in rows] == [0.25, 0.0, 0.25]
    assert sum(r["loss"] for r in rows) == pytest.approx(1 - competition_score(truth, pred))


def _random_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rectangles of salt (a quarter empty) and float32 probabilities for shifted, resized
    rectangles (some empty), so IoUs spread over the whole range."""
    truth = np.zeros((n, 101, 101, 1), np.float32)
    pred = np.zeros_like(truth)
    for i in range(n):
        top, left, h, w = rng.integers(0, 60, 2).tolist() + rng.integers(1, 40, 2).tolist()
        if rng.random() > 0.25:
            truth[i, top : top + h, left : left + w] = 1
        dt, dl, dh, dw = rng.integers(-4, 5, 4).tolist()
        if rng.random() > 0.2:
            rows = slice(max(top + dt, 0), max(top + dt + h + dh, 0))
            cols = slice(max(left + dl, 0), max(left + dl + w + dw, 0))
            pred[i, rows, cols] = 1
    noise = rng.random(truth.shape, dtype=np.float32) * 0.499
    return truth, np.where(pred == 1, 1.0 - noise, noise).astype(np.float32)


def test_keras_metric_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    truth, probs = _random_batch(rng, 48)
    expected = image_scores(truth, probs > 0.5)
    assert len(np.unique(expected)) > 4  # the batch really exercises several IoU levels
    got = keras.ops.convert_to_numpy(competition_score_ops(truth, probs))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    logits = np.log(probs / (1 - probs))
    got = keras.ops.convert_to_numpy(competition_score_ops(truth, logits, from_logits=True))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    metric = CompetitionScore()
    metric.update_state(truth[:20], probs[:20])
    metric.update_state(truth[20:], probs[20:])
    assert metric.name == "score"
    assert float(metric.result()) == pytest.approx(expected.mean(), abs=1e-6)


def test_keras_metric_config_round_trip() -> None:
    metric = CompetitionScore(threshold=0.3, from_logits=True, name="s")
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, CompetitionScore)
    assert (restored.threshold, restored.from_logits, restored.name) == (0.3, True, "s")


BACKEND_CHECK = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from tgssalt.keras_metrics import CompetitionScore
    from tgssalt.metrics import image_scores

    assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
    rng = np.random.default_rng(0)
    y = np.zeros((16, 101, 101, 1), np.float32)
    for i in range(1, 16):
        y[i, : 6 * i, : 5 * i] = 1
    x = (0.6 * y + 1.0 * rng.random(y.shape) * np.linspace(0, 1, 16)[:, None, None, None])
    x = x.astype(np.float32)
    model = keras.Sequential([keras.Input((101, 101, 1)), keras.layers.Conv2D(1, 1,
                              activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=[CompetitionScore()])
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert "score" in history.history, history.history
    model.set_weights([np.full((1, 1, 1, 1), 10.0), np.full((1,), -5.0)])  # salt: x > 0.5
    path = sys.argv[2] + "/model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    result = loaded.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    expected = image_scores(y, loaded.predict(x, verbose=0) > 0.5).mean()
    assert abs(result["score"] - expected) < 1e-5, (result, expected)
    assert 0.2 < expected < 0.9, expected  # a mix of right and wrong images
    print("ok", result["score"], expected)
    """
)


def test_keras_metric_trains_saves_and_reloads_on_both_backends(tmp_path: Path) -> None:
    """Under TensorFlow and JAX: train with the metric, save, reload, and agree with numpy."""
    env = {**os.environ, "PYTHONPATH": str(CODE_DIR), "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = {}
    for backend in ("tensorflow", "jax"):
        folder = tmp_path / backend
        folder.mkdir()
        runs[backend] = subprocess.Popen(
            [sys.executable, "-c", BACKEND_CHECK, backend, str(folder)],
            env={**env, "KERAS_BACKEND": backend},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for backend, run in runs.items():
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, f"{backend}:\n{out}\n{err[-3000:]}"
        assert out.startswith("ok"), out
