"""code/gpu_check.py: quick mode's table and JSON line, the refusals, the smp and MLflow
fallbacks, and the data pack the GPU session carries."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import write_data
from PIL import Image

CODE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run_check(*args: str, backend: str = "tensorflow") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CODE / "gpu_check.py"), *args],
        capture_output=True,
        text=True,
        env={**ENV, "KERAS_BACKEND": backend},
        timeout=600,
    )


@pytest.mark.slow  # trains and predicts in a subprocess; the GPU session runs it for real
def test_quick_mode_prints_a_table_then_a_json_line():
    result = run_check("--quick", "--predict", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["backend"] == "tensorflow" and summary["gpu"] is False and summary["quick"]
    assert summary["versions"]["keras"] and summary["versions"]["numpy"]
    assert [row["precision"] for row in summary["speed"]] == ["float32", "mixed_bfloat16"]
    for row in summary["speed"]:
        assert row["train_img_s"] > 0 and row["predict_img_s"] > 0
        assert row["size"] == 32 and row["smp"] == "no smp equivalent of this model"
    assert summary["predict"]["images"] == 8 and summary["predict"]["folds"] == 2
    assert summary["predict"]["img_s"] > 0
    table = "\n".join(lines[:-1])
    assert lines[0].startswith("gpu check: backend tensorflow, no GPU")
    assert "unet-resnet.json" in table and "predict: 8 images x 2 folds" in table


def test_jax_that_sees_only_a_cpu_is_refused():
    result = run_check("--quick", backend="jax")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "JAX sees only a CPU" in errors[0] and "--allow-cpu" in errors[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def run_main(capsys, *args: str) -> str:
    """gpu_check.main in this process; the one error line it exits 2 with."""
    import gpu_check

    with pytest.raises(SystemExit) as exit_info:
        gpu_check.run_cli(gpu_check.main, list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    return err


def test_bad_config_path_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert f"{missing}: config file not found" in run_main(capsys, "--config-file", str(missing))
    err = run_main(capsys, "--train-fold", "--no-speed", "--fold-config", str(missing))
    assert f"{missing}: config file not found" in err


def test_options_that_change_nothing_are_refused(capsys):
    assert "--size would change nothing" in run_main(capsys, "--size", "64")
    assert "--data-folder would change nothing" in run_main(capsys, "--data-folder", "x")
    assert "nothing to do" in run_main(capsys, "--no-speed")
    assert "--fold 2 is out of range" in run_main(
        capsys, "--quick", "--no-speed", "--train-fold", "--fold", "2"
    )


def test_accelerator_refusals():
    from tgssalt.errors import UserError
    from tgssalt.gpu_env import check_accelerator

    cpu = {"backend": "jax", "devices": ["cpu:0 cpu"], "gpu": False}
    with pytest.raises(UserError, match="JAX sees only a CPU"):
        check_accelerator(cpu, allow_cpu=False, require_gpu=False)
    check_accelerator(cpu, allow_cpu=True, require_gpu=False)
    check_accelerator({**cpu, "backend": "tensorflow"}, allow_cpu=False, require_gpu=False)
    with pytest.raises(UserError, match="--require-gpu: backend tensorflow sees no GPU"):
        check_accelerator({**cpu, "backend": "tensorflow"}, allow_cpu=True, require_gpu=True)
    gpu = {"backend": "jax", "devices": ["gpu:0 NVIDIA H200"], "gpu": True}
    check_accelerator(gpu, allow_cpu=False, require_gpu=True)


def test_smp_peer_is_skipped_with_a_reason(monkeypatch):
    from tgssalt.config import resolve_config
    from tgssalt.gpu_check import smp_peer

    encoder = resolve_config({"encoder": {"type": "Unet", "backbone": "resnet34"}})
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    assert smp_peer(encoder, True) == (
        None,
        "torch/smp not installed (pip install -r requirements-bench.txt)",
    )
    assert smp_peer(encoder, False)[0] is None
    assert smp_peer(resolve_config({}), True) == (None, "no smp equivalent of this model")


def test_a_fold_without_mlflow_keeps_its_metrics_json(tmp_path, monkeypatch):
    from tgssalt.gpu_workloads import ensure_tracking
    from tgssalt.tracking import log_fold_metrics, mlflow_run

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if MLflow were not installed
    assert ensure_tracking().startswith("none: mlflow is not installed")
    with mlflow_run(tmp_path, "exp", "run-cvfold0", {"stage1": {"epochs": 1}}):
        log_fold_metrics({"validation_score": 0.5}, tmp_path / "metrics.json")
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"validation_score": 0.5}
    assert not (tmp_path / "mlflow.db").exists()


def test_untracked_runs_a_script_with_the_mlflow_stand_in(tmp_path):
    """code/benchmarks/untracked.py: the script sees its own arguments and a `mlflow` whose
    calls record nothing (no mlflow.db, no mlruns), also where MLflow is installed."""
    script = tmp_path / "uses_mlflow.py"
    script.write_text(
        "import sys, mlflow\n"
        "mlflow.set_tracking_uri('sqlite:///' + sys.argv[1] + '/mlflow.db')\n"
        "with mlflow.start_run(run_name='x') as run:\n"
        "    mlflow.log_metrics({'score': 1.0})\n"
        "print(run.info.run_id, sys.argv[1:], mlflow.get_run(run.info.run_id).data.params)\n"
    )
    result = subprocess.run(
        [sys.executable, str(CODE / "benchmarks" / "untracked.py"), str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == "untracked" and str(tmp_path) in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uses_mlflow.py"]


def test_data_pack_round_trip(tmp_path):
    from tgssalt.data import load_train, read_images, test_ids
    from tgssalt.datapack import pack, unpack

    write_data(tmp_path / "in", n_train=6, n_test=4)
    (tmp_path / "in" / "depths.csv").write_text(
        "id,z\n" + "".join(f"t0x{i:03d},{i}\ns0x{i:03d},{i}\n" for i in range(6))
    )
    counts = pack(tmp_path / "in", tmp_path / "p.npz", limit=5)
    assert (counts["train"], counts["test"]) == (5, 4) and counts["bytes"] > 0
    unpack(tmp_path / "p.npz", tmp_path / "out")
    original, copy = load_train(tmp_path / "in"), load_train(tmp_path / "out")
    assert list(copy.ids) == list(original.ids[:5])
    assert np.array_equal(copy.images, original.images[:5])
    assert np.array_equal(copy.masks, original.masks[:5])
    assert list(test_ids(tmp_path / "out")) == list(test_ids(tmp_path / "in"))
    test_folder = tmp_path / "out" / "test" / "images"
    assert np.array_equal(
        read_images(test_folder, test_ids(tmp_path / "out"), 1),
        read_images(tmp_path / "in" / "test" / "images", test_ids(tmp_path / "in"), 1),
    )
    depths = (tmp_path / "out" / "depths.csv").read_text().splitlines()
    assert depths[0] == "id,z" and len(depths) == 1 + 5 + 4  # the packed ids' rows only


def test_data_pack_refuses_colour_images_and_a_used_folder(tmp_path):
    from tgssalt.datapack import pack, unpack
    from tgssalt.errors import UserError

    data = write_data(tmp_path / "in", n_train=3, n_test=2)
    for k, image_id in enumerate(data["train_ids"]):  # RGB PNGs, the second one not grey
        colour = np.zeros((101, 101, 3), np.uint8)
        colour[..., 0] = 9 * (k == 1)
        Image.fromarray(colour).save(tmp_path / "in/train/images" / f"{image_id}.png")
    with pytest.raises(UserError, match="1 image\\(s\\) have unequal RGB channels"):
        pack(tmp_path / "in", tmp_path / "p.npz")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        unpack(tmp_path / "p.npz", tmp_path / "used")


@pytest.mark.slow
def test_quick_fold_then_prediction_with_its_model(tmp_path):
    result = run_check(
        "--quick", "--no-speed", "--train-fold", "--outputs-folder", str(tmp_path), "--predict", "8"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    fold = summary["fold"]
    assert 0 <= fold["validation_score"] <= 1 and fold["minutes"] > 0
    assert fold["stage1_epochs"] == 1 and fold["stage2_epochs"] == 1
    assert fold["data"].startswith("synthetic: 32 train")
    assert summary["predict"]["models"].endswith("loaded 2 times")
    assert "speed" not in summary and "fold: " in result.stdout
