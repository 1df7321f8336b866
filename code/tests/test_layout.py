"""The run layout (names and paths of every artifact) and the split file written once per config."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from fakes import config_for, masks_for
from tgssalt.errors import UserError
from tgssalt.layout import (
    Outputs,
    base_run,
    fold_run,
    fold_subset,
    parse_fold_run,
    run_name,
    seed_run,
)
from tgssalt.splits import TRAIN_ONLY, fold_assignment, save_split, split_indices

IDS = np.array([f"i{k:02d}" for k in range(30)])
MASKS = masks_for(30, 0)


@pytest.mark.parametrize(
    ("run", "parsed"),
    [
        ("unet-1-cvfold3", ("unet-1", 3)),
        ("unet-1", ("unet-1", None)),
        ("unet-1-cvfold12", ("unet-1", 12)),
        ("unet-1-cvfold", ("unet-1-cvfold", None)),
        ("a-cvfold1-cvfold2", ("a-cvfold1", 2)),
    ],
)
def test_parse_fold_run_inverts_fold_run(run: str, parsed: tuple) -> None:
    assert parse_fold_run(run) == parsed
    assert fold_run(*parsed) == run


def test_a_seed_copys_run_puts_the_seed_before_the_version_and_keeps_the_round() -> None:
    assert seed_run("best64-1", 2) == "best64-seed2-1"
    assert seed_run("best64-1-pseudo1", 2) == "best64-seed2-1-pseudo1"
    assert seed_run("plain", 3) == "plain-seed3"


def test_names_of_a_config_and_its_artifacts(tmp_path: Path) -> None:
    config = config_for("unet-%s", 4)
    assert base_run(config) == "unet-4" == run_name("unet-%s", 4)
    outputs = Outputs(tmp_path)
    run = outputs.run(fold_run(base_run(config), 2))
    assert (run.base, run.fold) == ("unet-4", 2)
    assert run.resume("stage1") == tmp_path / "models" / "unet-4-cvfold2-stage1.resume.npz"
    assert run.snapshot("stage2", 0).name == "unet-4-cvfold2-stage2-snapshot1.weights.h5"
    assert run.predictions("valid") == tmp_path / "predictions" / "unet-4-cvfold2-valid.npz"
    assert outputs.ensemble("unet-4").summary == tmp_path / "models" / "unet-4-ensemble.json"
    assert fold_subset([2, 0, 1], 3) == "" and fold_subset([3, 0], 5) == "-folds0_3"
    subset = outputs.ensemble("unet-4", fold_subset([1], 4))
    assert subset.summary.name == "unet-4-folds1-ensemble.json"
    assert outputs.split_file("unet-4") == tmp_path / "folds" / "unet-4.csv"


def test_fold_runs_are_found_by_their_test_predictions_only(tmp_path: Path) -> None:
    (tmp_path / "predictions").mkdir()
    for name in ("b-1-cvfold2", "b-1-cvfold10", "b-1-cvfoldx", "b-1", "b-1-cvfold1-cvfold0"):
        (tmp_path / "predictions" / f"{name}-test.npz").write_bytes(b"")
    assert list(Outputs(tmp_path).fold_runs("b-1")) == [2, 10]


def test_split_is_written_once_and_read_back(tmp_path: Path) -> None:
    path, config = tmp_path / "folds" / "s.csv", config_for(folds=3)
    first = fold_assignment(path, IDS, MASKS, config, 1)
    assert sorted(set(first)) == [0, 1, 2]
    save_split(path, IDS, MASKS, first)
    cv = dataclasses.replace(config.crossvalidation, split_seed=99)
    other_split = dataclasses.replace(config, crossvalidation=cv)
    assert fold_assignment(path, IDS, MASKS, other_split, 0).tolist() == first.tolist()
    shuffled = np.random.default_rng(0).permutation(len(IDS))
    again = fold_assignment(path, IDS[shuffled], MASKS[shuffled], config, 0)
    assert again.tolist() == first[shuffled].tolist()  # by id, not by row
    train, valid = split_indices(first, 2)
    assert set(train) | set(valid) == set(range(30)) and not set(train) & set(valid)


def test_training_seed_keeps_the_folds_and_split_seed_changes_them(tmp_path: Path) -> None:
    """`seed` is training's random stream only: another one trains the same folds again."""
    config = config_for(folds=3)
    first = fold_assignment(tmp_path / "a.csv", IDS, MASKS, config, 0)
    other_seed = dataclasses.replace(config, seed=99)
    assert fold_assignment(tmp_path / "b.csv", IDS, MASKS, other_seed, 0).tolist() == first.tolist()
    cv = dataclasses.replace(config.crossvalidation, split_seed=99)
    other_split = dataclasses.replace(config, crossvalidation=cv)
    changed = fold_assignment(tmp_path / "c.csv", IDS, MASKS, other_split, 0)
    assert changed.tolist() != first.tolist()


def test_holdout_split(tmp_path: Path) -> None:
    config = config_for(folds=4)
    assignment = fold_assignment(tmp_path / "h.csv", IDS, MASKS, config, None)
    assert sorted(set(assignment)) == [TRAIN_ONLY, 0] and (assignment == 0).sum() == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ids", "30 ids that are not the data's 29"),
        ("folds", "folds 0, 1, 2, expected 0, 1, 2, 3"),
        ("masks", "coverage classes unlike the data's masks"),
        ("garbage", "columns"),
    ],
)
def test_a_split_of_other_data_is_refused(tmp_path: Path, change: str, message: str) -> None:
    path, config = tmp_path / "s.csv", config_for(folds=3)
    save_split(path, IDS, MASKS, fold_assignment(path, IDS, MASKS, config, 0))
    ids, masks = IDS, MASKS
    if change == "ids":
        ids, masks = IDS[1:], MASKS[1:]
    elif change == "folds":
        config = config_for(folds=4)
    elif change == "masks":
        masks = 1 - MASKS
    else:
        path.write_text("id,fold\nx,0\n")
    with pytest.raises(UserError) as info:
        fold_assignment(path, ids, masks, config, 0)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "delete it" in text
    assert "\n" not in text
