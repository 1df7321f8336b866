"""run_folds: train only the missing folds (resume), then ensemble; GPUs and parallel children.

`fold.train_fold` is replaced by a fake that writes a fold's outputs, and child processes by fake
ones: nothing trains.
"""

import dataclasses
import importlib.util
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import tgssalt.fold_training
from fakes import write_data, write_fold
from tgssalt import cross_validation as rf
from tgssalt.config import config_difference
from tgssalt.errors import UserError
from tgssalt.layout import Outputs, fold_complete

CONFIG = {
    "name": "fake-%s",
    "version": 1,
    "crossvalidation": {"folds": 3},
    "model": {"start_filters": 2, "depth": 2, "dropout": 0.0},
}
BASE = "fake-1"
CODE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("data")
    return root, write_data(root)


@pytest.fixture
def setup(tmp_path, data, monkeypatch):
    """A config file, an outputs folder, and a fake `train_fold` recording the folds it trains."""
    config_file = tmp_path / "fake.json"
    config_file.write_text(json.dumps(CONFIG))
    data_folder, arrays = data
    trained = []

    def fake_train_fold(config, fold, data_folder_arg, outputs_folder):
        assert Path(data_folder_arg) == data_folder
        trained.append(fold)
        write_fold(Path(outputs_folder), config, fold, arrays)
        return {}

    monkeypatch.setattr(tgssalt.fold_training, "train_fold", fake_train_fold)
    return config_file, data_folder, tmp_path / "outputs", trained, arrays


def _config(config_file: Path) -> dict:
    from tgssalt.config import load_config

    return load_config(config_file)


def test_trains_every_fold_then_ensembles(setup, monkeypatch):
    config_file, data_folder, outputs, trained, _ = setup
    monkeypatch.setattr(rf, "visible_gpus", lambda: [])
    summary = rf.run_folds(config_file, data_folder, outputs)
    assert trained == [0, 1, 2]
    assert summary["folds_used"] == [0, 1, 2] and summary["complete"]
    assert Outputs(outputs).ensemble(BASE).submission.is_file()


def test_resumes_with_the_missing_folds_only(setup, monkeypatch):
    config_file, data_folder, outputs, trained, arrays = setup
    monkeypatch.setattr(rf, "visible_gpus", lambda: [])
    config = _config(config_file)
    for fold in (0, 1, 2):
        write_fold(outputs, config, fold, arrays)
    (outputs / "models" / f"{BASE}-cvfold1-metrics.json").unlink()  # fold 1 was interrupted
    rf.run_folds(config_file, data_folder, outputs)
    assert trained == [1]
    rf.run_folds(config_file, data_folder, outputs)  # all complete: only the ensemble runs
    assert trained == [1]


def test_refuses_folds_of_a_changed_config(setup):
    config_file, data_folder, outputs, trained, arrays = setup
    config = _config(config_file)
    changed = dataclasses.replace(
        config, seed=1, stage1=dataclasses.replace(config.stage1, epochs=3)
    )
    write_fold(outputs, changed, 0, arrays)
    with pytest.raises(UserError, match=r"cvfold0-config.json: fold 0 was trained with a differ"):
        rf.run_folds(config_file, data_folder, outputs)
    assert trained == []
    assert config_difference(changed.to_dict(), config.to_dict()) == "seed: 1 -> 5678"
    assert (
        config_difference({"stage1": {"epochs": 3}}, config.to_dict()) == "stage1.epochs: 3 -> 20"
    )
    assert (
        config_difference({"seed": 5678}, config.to_dict()) is None
    )  # keys added later are ignored


def test_several_configs_train_then_blend_and_resume(setup, monkeypatch):
    config_file, data_folder, outputs, trained, _ = setup
    monkeypatch.setattr(rf, "visible_gpus", lambda: [])
    other = config_file.with_name("other.json")
    other.write_text(json.dumps({**CONFIG, "name": "other-%s"}))
    summary = rf.run_recipe([config_file, other], data_folder, outputs)
    assert trained == [0, 1, 2, 0, 1, 2]
    layout = Outputs(outputs)
    assert layout.ensemble(BASE).submission.is_file()
    assert layout.ensemble("other-1").submission.is_file()
    assert summary["run"] == "fake-1+other-1-blend"
    assert [row["run"] for row in summary["members"]] == [BASE, "other-1"]
    assert layout.blend(summary["run"]).submission.is_file()
    rf.run_recipe([config_file, other], data_folder, outputs)  # all complete: nothing retrains
    assert len(trained) == 6


def test_a_repeated_config_fails_before_training(setup):
    config_file, data_folder, outputs, trained, _ = setup
    with pytest.raises(UserError, match="--config-file: run fake-1 is named twice"):
        rf.run_recipe([config_file, config_file], data_folder, outputs)
    assert trained == [] and not outputs.exists()


def test_cli_passes_every_config_file(monkeypatch):
    calls = []
    monkeypatch.setattr(rf, "run_recipe", lambda *args: calls.append(args))
    spec = importlib.util.spec_from_file_location("run_folds_cli", CODE / "run_folds.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(["--config-file", "a.json", "b.json", "--sequential", "--folds", "0,1"])
    config_files, _, _, parallel, only = calls[0]
    assert config_files == [Path("a.json"), Path("b.json")] and not parallel and only == [0, 1]


def test_a_failing_fold_stops_before_the_ensemble(setup, monkeypatch):
    config_file, data_folder, outputs, trained, _ = setup
    monkeypatch.setattr(rf, "visible_gpus", lambda: [])
    real = tgssalt.fold_training.train_fold

    def fail_on_1(config, fold, *args):
        if fold == 1:
            raise UserError("fold 1 broke")
        return real(config, fold, *args)

    monkeypatch.setattr(tgssalt.fold_training, "train_fold", fail_on_1)
    with pytest.raises(UserError, match="fold 1 broke"):
        rf.run_folds(config_file, data_folder, outputs)
    assert trained == [0] and not Outputs(outputs).ensemble(BASE).submission.exists()


def test_several_gpus_train_in_parallel_unless_sequential(setup, monkeypatch):
    config_file, data_folder, outputs, trained, arrays = setup
    calls = []

    def fake_parallel(config_path, folds, gpus, data_arg, outputs_arg, base):
        calls.append((folds, gpus, base))
        for fold in folds:
            write_fold(outputs_arg, _config(config_path), fold, arrays)

    monkeypatch.setattr(rf, "visible_gpus", lambda: ["0", "1"])
    monkeypatch.setattr(rf, "train_parallel", fake_parallel)
    rf.run_folds(config_file, data_folder, outputs)
    assert calls == [([0, 1, 2], ["0", "1"], BASE)] and trained == []
    (outputs / "models" / f"{BASE}-cvfold2-metrics.json").unlink()
    rf.run_folds(config_file, data_folder, outputs, parallel=False)
    assert trained == [2] and len(calls) == 1


class FakeProcess:
    """A finished child: writes its fold's outputs (exit 0) or a log line (exit 1)."""

    running: list = []

    def __init__(self, command, stdout, stderr, env, outputs, arrays, fail=()):
        self.fold = int(command[command.index("--cv-currentfold") + 1])
        self.gpu, self.polls = env["CUDA_VISIBLE_DEVICES"], 0
        assert self.gpu not in FakeProcess.running, "two folds on one GPU"
        FakeProcess.running.append(self.gpu)
        self.returncode = 1 if self.fold in fail else 0
        if self.returncode:
            stdout.write("Traceback ...\nerror: out of GPU memory\n")
        else:
            write_fold(outputs, _config(Path(command[command.index("--config-file") + 1])),
                       self.fold, arrays)  # fmt: skip

    def poll(self):
        self.polls += 1
        if self.polls < 2:
            return None
        if self.gpu in FakeProcess.running:
            FakeProcess.running.remove(self.gpu)
        return self.returncode


def test_train_parallel_uses_each_gpu_and_reports_failures(setup, capsys):
    config_file, data_folder, outputs, _, arrays = setup
    started = []

    def popen(command, **kwargs):
        process = FakeProcess(command, **kwargs, outputs=outputs, arrays=arrays, fail=(2,))
        started.append((process.fold, process.gpu))
        return process

    with pytest.raises(UserError, match=r"fold\(s\) failed: fake-1-cvfold2 \(exit 1, see .*log"):
        rf.train_parallel(config_file, [0, 1, 2, 3], ["0", "1"], data_folder, outputs, BASE,
                          popen=popen, poll_seconds=0)  # fmt: skip
    assert sorted(f for f, _ in started) == [0, 1, 2, 3] and {g for _, g in started} == {"0", "1"}
    assert [fold_complete(outputs, f"{BASE}-cvfold{k}") for k in range(4)] == [1, 1, 0, 1]
    assert "fake-1-cvfold2: failed with exit status 1 (GPU" in capsys.readouterr().err
    assert "out of GPU memory" in (outputs / "logs" / f"{BASE}-cvfold2.log").read_text()


def test_fold_command_runs_train_fold(tmp_path):
    command = rf.fold_command(tmp_path / "c.json", 3, tmp_path / "d", tmp_path / "o")
    assert command[1].endswith("train_fold.py") and Path(command[1]).is_file()
    assert command[command.index("--cv-currentfold") + 1] == "3"


@pytest.mark.parametrize(
    ("value", "gpus"),
    [("0,1", ["0", "1"]), ("3", ["3"]), ("", []), ("-1", []), (" 2, 5 ", ["2", "5"])],
)
def test_visible_gpus_from_environment(monkeypatch, value, gpus):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert rf.visible_gpus() == gpus


def test_visible_gpus_from_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert rf.visible_gpus() == []  # no driver
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: a)'\necho 'GPU 1: NVIDIA H100'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    assert rf.visible_gpus() == ["0", "1"]
    assert subprocess.run([str(smi)], capture_output=True, env=os.environ).returncode == 0
