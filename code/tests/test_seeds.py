"""`run_seeds.py`: copies of a config under other training seeds, on the same folds, and the
spread of their scores. Training is replaced by a fake that records each fold's config and writes
what a finished fold leaves (metrics and test predictions), with a score chosen per seed."""

import json
import statistics
from pathlib import Path

import pytest
import run_seeds
from tgssalt import cross_validation, seeds
from tgssalt.errors import UserError
from tgssalt.layout import Outputs, base_run, fold_run, seed_name

SCORES = {5678: 0.70, 1: 0.74, 2: 0.75}
CONFIG = {"name": "s-%s", "model": {"start_filters": 4, "depth": 2}}
TECHNIQUE = {"name": "t-%s", "model": {"start_filters": 4, "depth": 2, "scse": True}}
GAIN = {"s": 0.0, "t": 0.02}  # the fake's score change per config name
# what a fold records of its time: 2 min + 3 min of training, 800 images at 40 img/s (20 s)
# and 2,000 at 50 img/s (40 s) of prediction: 6 minutes in all
TIMES = {
    "stage1_seconds": 120.0,
    "stage2_seconds": 180.0,
    "validation_images": 800,
    "validation_predict_images_per_second": 40.0,
    "test_images": 2000,
    "test_predict_images_per_second": 50.0,
}


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """(the command line's config and folder flags, list of (run, seed, split seed) the fake
    trained)."""
    calls = []

    def fake_train(config, folds, data_folder, outputs_folder):
        for fold in folds:
            run = Outputs(Path(outputs_folder)).run(fold_run(base_run(config), fold))
            run.prepare()
            score = SCORES[config.seed] + GAIN[config.name[0]]
            run.metrics.write_text(json.dumps({"validation_score": score, **TIMES}))
            run.predictions("test").write_bytes(b"")
            calls.append((run.run, config.seed, config.crossvalidation.split_seed))

    monkeypatch.setattr(cross_validation, "train_sequential", fake_train)
    monkeypatch.setattr(cross_validation, "visible_gpus", lambda: [])
    config_file = tmp_path / "s.json"
    config_file.write_text(json.dumps(CONFIG))
    (tmp_path / "t.json").write_text(json.dumps(TECHNIQUE))
    folders = ["--data-folder", str(tmp_path / "data"), "--outputs-folder", str(tmp_path / "out")]
    return ["--config-file", str(config_file), *folders], calls


def test_seed_name_goes_before_the_version():
    assert seed_name("best-%s", 1) == "best-seed1-%s"
    assert seed_name("plain", 2) == "plain-seed2"


def test_each_seed_trains_the_same_folds_and_the_spread_is_printed(trained, capsys):
    flags, calls = trained
    run_seeds.main([*flags, "--seeds", "2,5678,1", "--folds", "0,1"])
    trained_runs = {run: (seed, split) for run, seed, split in calls}
    assert trained_runs == {
        "s-seed1-1-cvfold0": (1, 5678),
        "s-seed1-1-cvfold1": (1, 5678),
        "s-seed2-1-cvfold0": (2, 5678),
        "s-seed2-1-cvfold1": (2, 5678),
        "s-1-cvfold0": (5678, 5678),  # the config's own seed is the config itself
        "s-1-cvfold1": (5678, 5678),
    }
    mean, std = statistics.mean(SCORES.values()), statistics.stdev(SCORES.values())
    assert (mean, round(std, 4)) == (pytest.approx(0.73), 0.0265)
    out = capsys.readouterr().out
    assert f"fold 1: seed 1 0.7400, seed 2 0.7500, seed 5678 0.7000; mean {mean:.4f}, " in out
    assert f"std {std:.4f} (n=3)" in out


def test_jobs_train_the_seeds_at_once_each_from_its_config_file(trained, tmp_path, monkeypatch):
    flags, calls = trained
    pools = []

    def fake_pool(tasks, envs, data_folder, outputs_folder):
        pools.append((len(envs), [(task.config_file.name, task.fold) for task in tasks]))
        for task in tasks:
            config = cross_validation.load_config(task.config_file)
            cross_validation.train_sequential(config, [task.fold], data_folder, outputs_folder)

    monkeypatch.setattr(cross_validation, "train_pool", fake_pool)
    run_seeds.main([*flags, "--seeds", "5678,1,2", "--jobs", "3"])
    assert pools == [(3, [("s-seed1-1.json", 0), ("s-seed2-1.json", 0), ("s.json", 0)])]
    assert sorted((run, seed) for run, seed, _ in calls) == [
        ("s-1-cvfold0", 5678), ("s-seed1-1-cvfold0", 1), ("s-seed2-1-cvfold0", 2)
    ]  # fmt: skip
    copy = json.loads((tmp_path / "out" / "configs" / "s-seed2-1.json").read_text())
    assert (copy["seed"], copy["name"]) == (2, "s-seed2-%s")


def test_a_rerun_trains_nothing_and_reports_again(trained, capsys):
    flags, calls = trained
    argv = [*flags, "--seeds", "1,2"]
    run_seeds.main(argv)
    calls.clear()
    run_seeds.main(argv)
    assert calls == []
    assert "fold 0: seed 1 0.7400, seed 2 0.7500; mean 0.7450, std 0.0071 (n=2)" in (
        capsys.readouterr().out
    )


def test_a_fold_the_config_lacks_is_a_clear_error(trained):
    flags, calls = trained
    with pytest.raises(UserError, match=r"--folds 4 is out of range: the config has 4 folds"):
        run_seeds.main([*flags, "--seeds", "1", "--folds", "4"])
    assert calls == []


def test_several_configs_end_with_a_table_against_the_first(trained, capsys, tmp_path):
    flags, calls = trained
    flags = flags[:2] + [str(tmp_path / "t.json")] + flags[2:]
    run_seeds.main([*flags, "--seeds", "5678,1,2"])
    assert sorted(run for run, _, _ in calls) == [
        "s-1-cvfold0", "s-seed1-1-cvfold0", "s-seed2-1-cvfold0",
        "t-1-cvfold0", "t-seed1-1-cvfold0", "t-seed2-1-cvfold0",
    ]  # fmt: skip
    table = capsys.readouterr().out.split("| config |")[1].splitlines()
    assert table[2] == "| s-1 | 0.7300 ± 0.0265 (3) | +0.0000 | 6.0 |"
    assert table[3] == "| t-1 | 0.7500 ± 0.0265 (3) | +0.0200 | 6.0 |"


def test_fold_minutes_add_training_and_prediction():
    assert seeds.fold_minutes(TIMES) == pytest.approx(6.0)
    assert seeds.fold_minutes({**TIMES, "stage2_seconds": 0.0}) == pytest.approx(3.0)


def test_two_configs_with_one_run_name_are_refused(trained, tmp_path):
    flags, calls = trained
    (tmp_path / "copy.json").write_text(json.dumps(CONFIG))
    flags = flags[:2] + [str(tmp_path / "copy.json")] + flags[2:]
    with pytest.raises(UserError, match=r"copy.json: same run name as .*s.json \(s-1\)"):
        run_seeds.main([*flags, "--seeds", "1"])
    assert calls == []
