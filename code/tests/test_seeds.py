"""`run_seeds.py`: copies of a config under other training seeds, on the same folds, and the
spread of their scores. Training is replaced by a fake that records each fold's config and writes
what a finished fold leaves (metrics and test predictions), with a score chosen per seed."""

import json
import statistics
from pathlib import Path

import pytest
import run_seeds
from tgssalt import seeds
from tgssalt.errors import UserError
from tgssalt.layout import Outputs, base_run, fold_run, seed_name

SCORES = {5678: 0.70, 1: 0.74, 2: 0.75}
CONFIG = {"name": "s-%s", "model": {"start_filters": 4, "depth": 2}}


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """(the command line's config and folder flags, list of (run, seed, split seed) the fake
    trained)."""
    calls = []

    def fake_train(config, folds, data_folder, outputs_folder):
        for fold in folds:
            run = Outputs(Path(outputs_folder)).run(fold_run(base_run(config), fold))
            run.prepare()
            run.metrics.write_text(json.dumps({"validation_score": SCORES[config.seed]}))
            run.predictions("test").write_bytes(b"")
            calls.append((run.run, config.seed, config.crossvalidation.split_seed))

    monkeypatch.setattr(seeds, "train_sequential", fake_train)
    config_file = tmp_path / "s.json"
    config_file.write_text(json.dumps(CONFIG))
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
