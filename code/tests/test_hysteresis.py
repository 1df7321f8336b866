"""code/benchmarks/hysteresis.py: the rule it measures, on hand-made probability maps."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hysteresis.py"


def load_script():
    """The benchmark script as a module (code/benchmarks is not a package)."""
    spec = importlib.util.spec_from_file_location("hysteresis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def maps() -> tuple[np.ndarray, np.ndarray]:
    """Image 0: a faint salt body (0.40) with a sure corner (0.90). Image 1: no salt, a faint
    speck (0.40) touching image 0's body across the batch axis only."""
    probs = np.zeros((2, 12, 12), np.float32)
    probs[0, 2:8, 2:8] = 0.40
    probs[0, 2:4, 2:4] = 0.90
    probs[1, 2:4, 2:4] = 0.40
    truth = np.zeros((2, 12, 12), np.uint8)
    truth[0, 2:8, 2:8] = 1
    return truth, probs


def test_hysteresis_keeps_a_faint_body_with_a_sure_part_and_drops_a_faint_speck():
    hysteresis = load_script()
    truth, probs = maps()
    table = hysteresis.hysteresis_tables(truth, probs)
    low = int(np.flatnonzero(hysteresis.LOWS == 0.36)[0])
    gap_to_050 = int(np.flatnonzero(hysteresis.GAPS == 0.14)[0])
    # low 0.36, high 0.50: the whole body kept (IoU 1), the speck in image 1 dropped.
    assert table[:, low, gap_to_050, 0].tolist() == [1.0, 1.0]
    # one threshold at 0.36 keeps the speck, so the empty image scores 0.
    assert table[:, low, 0, 0].tolist() == [1.0, 0.0]


def test_halves_gain_is_zero_when_hysteresis_adds_nothing():
    hysteresis = load_script()
    table = np.random.default_rng(1).random((40, 3, 2, 4)).astype(np.float32)
    table[:, :, 1] = table[:, :, 0]
    mean, spread = hysteresis.halves_gain(table, splits=5)
    assert (mean, spread) == (0.0, 0.0)


def test_a_run_without_predictions_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--run", "nosuch-1", "--outputs-folder", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nosuch-1-cvfold<k>-test.npz" in result.stderr.strip().splitlines()[-1]
