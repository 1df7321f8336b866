"""One config trained under several training seeds on the same folds, and the spread of scores.

One fold of one seed moves by a few hundredths between random streams, so a change is measured
on 3 seeds of a fold (mean and standard deviation) or on every fold. Each seed is a copy of the
config with `seed` and `name` changed (`layout.seed_name`: `best-%s` -> `best-seed1-%s`); the
config's own seed keeps the config as it is, so a run already trained counts. `seed` drives only
training (`crossvalidation.split_seed` the folds), so every copy validates on the same images.
Folds already complete are not retrained and an interrupted one resumes (`cross_validation`).
"""

import json
import statistics
from pathlib import Path

from .config import Config, load_config, override
from .cross_validation import check_folds_in_range, missing_folds, train_sequential
from .layout import Outputs, base_run, fold_run, seed_name


def seed_config(config: Config, seed: int) -> Config:
    """`config` under training seed `seed`: itself for its own seed, else a renamed copy."""
    if seed == config.seed:
        return config
    return override(config, {"seed": seed, "name": seed_name(config.name, seed)})


def fold_score(config: Config, fold: int, outputs_folder: Path) -> float:
    """The validation score a complete fold of `config` recorded."""
    run = Outputs(Path(outputs_folder)).run(fold_run(base_run(config), fold))
    return json.loads(run.metrics.read_text())["validation_score"]


def spread(scores: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation); the deviation is 0 for a single score."""
    return statistics.mean(scores), statistics.stdev(scores) if len(scores) > 1 else 0.0


def run_seeds(
    config_file: Path, seeds: list[int], folds: list[int], data_folder: Path, outputs_folder: Path
) -> dict[int, dict[int, float]]:
    """Train `folds` of the config under each seed (what is missing), then print each fold's
    scores with their mean and standard deviation; returns {fold: {seed: score}}."""
    config = load_config(config_file)
    check_folds_in_range(folds, config)
    copies = {seed: seed_config(config, seed) for seed in seeds}
    for seed, copy in copies.items():
        missing = [k for k in missing_folds(copy, outputs_folder) if k in folds]
        print(f"{base_run(copy)}: seed {seed}; training folds {missing or 'none'}", flush=True)
        train_sequential(copy, missing, data_folder, outputs_folder)
    scores = {k: {s: fold_score(c, k, outputs_folder) for s, c in copies.items()} for k in folds}
    for fold, by_seed in scores.items():
        mean, std = spread(list(by_seed.values()))
        listed = ", ".join(f"seed {s} {v:.4f}" for s, v in by_seed.items())
        print(f"fold {fold}: {listed}; mean {mean:.4f}, std {std:.4f} (n={len(by_seed)})")
    return scores
