"""code/benchmark.py: the JSON line, the pipeline mode and the smp peer's install hint."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
TINY = {
    "input": {"size": 32, "channels": 1},
    "model": {"start_filters": 4, "depth": 2},
    "stage1": {"batch_size": 4},
    "predict": {"batch_size": 8},
}
TINY_ENCODER = {
    "input": {"size": 32, "channels": 1},
    "encoder": {"type": "Unet", "backbone": "resnet34", "weights": None},
    "stage1": {"batch_size": 2},
    "predict": {"batch_size": 4},
}


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(config))
    return path


def run_script(*args: str) -> dict:
    """Run code/benchmark.py; return its last line parsed as JSON."""
    result = subprocess.run(
        [sys.executable, str(CODE / "benchmark.py"), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_json_line_and_pipeline_mode(tmp_path):
    config = write_config(tmp_path, TINY)
    summary = run_script(
        *("--config-file", str(config), "--steps", "2", "--repeats", "1"),
        *("--pipeline", "--pipeline-images", "64"),
    )
    for key in ("train_img_s", "predict_img_s", "pipeline_img_s", "pipeline_batches_s"):
        assert summary[key] > 0, key
    assert summary["pipeline_jitter_img_s"] > 0
    assert summary["batch"] == 4 and summary["predict_batch"] == 8 and summary["size"] == 32
    assert "peer_train_img_s" not in summary and summary["precision"] == "float32"


def test_peer_without_torch_says_how_to_install(tmp_path, monkeypatch, capsys):
    import benchmark

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    config = write_config(tmp_path, TINY_ENCODER)
    with pytest.raises(SystemExit) as exit_info:
        benchmark.run_cli(benchmark.main, ["--config-file", str(config), "--peer", "smp"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install -r requirements-bench.txt" in err


def test_peer_refused_for_the_from_scratch_unet(tmp_path, capsys):
    import benchmark

    config = write_config(tmp_path, TINY)
    with pytest.raises(SystemExit) as exit_info:
        benchmark.run_cli(benchmark.main, ["--config-file", str(config), "--peer", "smp"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no exact segmentation_models_pytorch equivalent" in err


@pytest.mark.slow
@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("torch", "segmentation_models_pytorch")),
    reason="torch and segmentation-models-pytorch are not installed (requirements-bench.txt)",
)
def test_peer_smp_runs(tmp_path):
    config = write_config(tmp_path, TINY_ENCODER)
    summary = run_script(
        "--config-file", str(config), "--steps", "2", "--repeats", "1", "--peer", "smp"
    )
    for key in ("peer_train_img_s", "peer_predict_img_s", "train_ratio", "predict_ratio"):
        assert summary[key] > 0, key
    assert summary["peer"].startswith("smp")
