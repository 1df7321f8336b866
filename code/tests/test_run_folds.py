"""run_folds: train only the missing folds (resume), then ensemble; a pool of child processes.

`fold.train_fold` is replaced by a fake that writes a fold's outputs, and child processes by fake
ones: nothing trains.
"""

import dataclasses
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import keras
import pytest
import tgssalt.fold_training
from fakes import write_data, write_fold
from tgssalt import cross_validation as rf
from tgssalt import fold_pool
from tgssalt.config import Config, config_difference
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
    summary = rf.run_recipe([config_file], data_folder, outputs)
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
    rf.run_recipe([config_file], data_folder, outputs)
    assert trained == [1]
    rf.run_recipe([config_file], data_folder, outputs)  # all complete: only the ensemble runs
    assert trained == [1]


def test_refuses_folds_of_a_changed_config(setup):
    config_file, data_folder, outputs, trained, arrays = setup
    config = _config(config_file)
    changed = dataclasses.replace(
        config, seed=1, stage1=dataclasses.replace(config.stage1, epochs=3)
    )
    write_fold(outputs, changed, 0, arrays)
    with pytest.raises(UserError, match=r"cvfold0-config.json: fold 0 was trained with a differ"):
        rf.run_recipe([config_file], data_folder, outputs)
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
    cli.main(["--config-file", "a.json", "b.json", "--jobs", "3", "--folds", "0,1"])
    config_files, _, _, jobs, only = calls[0]
    assert config_files == [Path("a.json"), Path("b.json")] and jobs == 3 and only == [0, 1]
    cli.main(["--config-file", "a.json"])
    assert calls[1][3] is None and calls[1][4] is None


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_cli_refuses_a_job_count_below_one(value, capsys):
    spec = importlib.util.spec_from_file_location("run_folds_cli", CODE / "run_folds.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as stop:
        cli.parse_args(["--config-file", "a.json", "--jobs", value])
    assert stop.value.code == 2
    assert f"argument --jobs: {value!r} is not a whole number >= 1" in capsys.readouterr().err


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
        rf.run_recipe([config_file], data_folder, outputs)
    assert trained == [0] and not Outputs(outputs).ensemble(BASE).submission.exists()


def fake_pool(calls: list, arrays: dict):
    """A `train_pool` that records its tasks and slots and writes each task's fold."""

    def pool(tasks, envs, data_arg, outputs_arg):
        calls.append(([(t.base, t.fold) for t in tasks], envs))
        for task in tasks:
            write_fold(outputs_arg, _config(task.config_file), task.fold, arrays)

    return pool


def test_several_gpus_train_in_a_pool_unless_one_job(setup, monkeypatch):
    config_file, data_folder, outputs, trained, arrays = setup
    calls = []
    monkeypatch.setattr(rf, "visible_gpus", lambda: ["0", "1"])
    monkeypatch.setattr(rf, "train_pool", fake_pool(calls, arrays))
    rf.run_recipe([config_file], data_folder, outputs)
    envs = [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    assert calls == [([(BASE, 0), (BASE, 1), (BASE, 2)], envs)] and trained == []
    (outputs / "models" / f"{BASE}-cvfold2-metrics.json").unlink()
    rf.run_recipe([config_file], data_folder, outputs, jobs=1)
    assert trained == [2] and len(calls) == 1


def test_cpu_jobs_pool_every_config_on_a_share_of_the_cores(setup, monkeypatch):
    config_file, data_folder, outputs, trained, arrays = setup
    other = config_file.with_name("other.json")
    other.write_text(json.dumps({**CONFIG, "name": "other-%s"}))
    write_fold(outputs, _config(config_file), 1, arrays)
    calls = []
    monkeypatch.setattr(rf, "visible_gpus", lambda: [])
    monkeypatch.setattr(fold_pool, "usable_cores", lambda: 4)
    monkeypatch.setattr(rf, "train_pool", fake_pool(calls, arrays))
    summary = rf.run_recipe([config_file, other], data_folder, outputs, jobs=2)
    (tasks, envs), *rest = calls
    assert tasks == [(BASE, 0), (BASE, 2), ("other-1", 0), ("other-1", 1), ("other-1", 2)]
    assert [env["TF_NUM_INTRAOP_THREADS"] for env in envs] == ["2", "2"] and not rest
    assert trained == [] and summary["run"] == "fake-1+other-1-blend"


def test_one_missing_fold_trains_in_this_process(setup, monkeypatch):
    config_file, data_folder, outputs, trained, arrays = setup
    for fold in (0, 1):
        write_fold(outputs, _config(config_file), fold, arrays)
    monkeypatch.setattr(rf, "visible_gpus", lambda: [])
    monkeypatch.setattr(rf, "train_pool", lambda *args: pytest.fail("no pool for one fold"))
    rf.run_recipe([config_file], data_folder, outputs, jobs=3)
    assert trained == [2]


@pytest.mark.parametrize(("jobs", "cores", "threads"), [(1, 2, "2"), (2, 2, "1"), (3, 2, "1"),
                                                        (2, 16, "8")])  # fmt: skip
def test_cpu_slots_split_the_cores(monkeypatch, jobs, cores, threads):
    monkeypatch.setattr(fold_pool, "usable_cores", lambda: cores)
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    envs = fold_pool.slot_envs(jobs, gpus=[])
    assert len(envs) == jobs and all(env == envs[0] for env in envs)
    env = envs[0]
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == threads
    assert env["TF_NUM_INTEROP_THREADS"] == "1" and "CUDA_VISIBLE_DEVICES" not in env
    assert env["XLA_FLAGS"].startswith("--xla_dump_to=/tmp/x ")  # the user's flags kept
    assert f"intra_op_parallelism_threads={threads}" in env["XLA_FLAGS"]
    eigen = "true" if threads != "1" else "false"
    assert f"--xla_cpu_multi_thread_eigen={eigen}" in env["XLA_FLAGS"]


def test_gpu_slots_take_the_gpus_in_turn():
    assert fold_pool.slot_envs(2, ["3", "5"]) == [
        {"CUDA_VISIBLE_DEVICES": "3"},
        {"CUDA_VISIBLE_DEVICES": "5"},
    ]
    shared = fold_pool.slot_envs(3, ["0"])
    assert [env["CUDA_VISIBLE_DEVICES"] for env in shared] == ["0", "0", "0"]
    assert all(env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for env in shared)
    assert all(env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for env in shared)


class FakeProcess:
    """A finished child: writes its fold's outputs (exit 0) or a log line (exit 1)."""

    running: list = []

    def __init__(self, command, stdout, stderr, env, outputs, arrays, fail=()):
        self.fold = int(command[command.index("--cv-currentfold") + 1])
        self.slot, self.polls = env["SLOT"], 0
        assert self.slot not in FakeProcess.running, "two folds in one slot"
        FakeProcess.running.append(self.slot)
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
        if self.slot in FakeProcess.running:
            FakeProcess.running.remove(self.slot)
        return self.returncode


def test_train_pool_uses_each_slot_and_reports_failures(setup, capsys):
    config_file, data_folder, outputs, _, arrays = setup
    started = []

    def popen(command, **kwargs):
        process = FakeProcess(command, **kwargs, outputs=outputs, arrays=arrays, fail=(2,))
        started.append((process.fold, process.slot))
        return process

    tasks = [fold_pool.FoldTask(config_file, _config(config_file), k) for k in range(4)]
    envs = [{"CUDA_VISIBLE_DEVICES": gpu, "SLOT": gpu} for gpu in ("0", "1")]
    with pytest.raises(UserError, match=r"fold\(s\) failed: fake-1-cvfold2 \(exit 1, see .*log"):
        fold_pool.train_pool(tasks, envs, data_folder, outputs, popen=popen, poll_seconds=0)
    assert sorted(f for f, _ in started) == [0, 1, 2, 3] and {s for _, s in started} == {"0", "1"}
    assert [fold_complete(outputs, f"{BASE}-cvfold{k}") for k in range(4)] == [1, 1, 0, 1]
    assert "fake-1-cvfold2: failed with exit status 1 (GPU" in capsys.readouterr().err
    assert "out of GPU memory" in (outputs / "logs" / f"{BASE}-cvfold2.log").read_text()


def test_fold_command_runs_train_fold(tmp_path):
    task = fold_pool.FoldTask(tmp_path / "c.json", Config(), 3)
    command = fold_pool.fold_command(task, tmp_path / "d", tmp_path / "o")
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


def test_jobs_train_real_folds_as_child_processes_on_a_share_of_the_cores(tmp_path):
    """`run_folds.py --jobs 2` for real: two folds of a small config train at once, each in a
    child process that TensorFlow limits to its share of the cores, then the ensemble runs."""
    from conftest import run_command
    from tgssalt.synthetic import generate_dataset

    generate_dataset(tmp_path / "data", n_train=48, n_test=8, seed=3)
    small = {
        "name": "pool-%s",
        "crossvalidation": {"folds": 2},
        "input": {"size": 32},
        "model": {"start_filters": 4, "depth": 2, "dropout": 0.0},
        "stage1": {"epochs": 2, "batch_size": 8},
        "stage2": {"epochs": 1, "batch_size": 8},
    }
    (tmp_path / "pool.json").write_text(json.dumps(small))
    command = [str(CODE / "run_folds.py"), "--config-file", str(tmp_path / "pool.json"), "--jobs"]
    command += ["2", "--data-folder", str(tmp_path / "data"), "--outputs-folder", str(tmp_path)]
    done = run_command([sys.executable, *command])
    assert done.returncode == 0, done.stderr[-2000:]
    threads = max(1, fold_pool.usable_cores() // 2)
    for fold in (0, 1):
        log = (tmp_path / "logs" / f"pool-1-cvfold{fold}.log").read_text()
        if keras.backend.backend() == "tensorflow":  # the backend that names its thread count
            assert f"on cpu ({threads} thread" in log
        assert fold_complete(tmp_path, f"pool-1-cvfold{fold}")
    assert "pool-1-cvfold1: training on CPU" in done.stdout
    assert Outputs(tmp_path).ensemble("pool-1").submission.is_file()
