"""Configs trained under several training seeds on the same folds, and the spread of scores.

One fold of one seed moves by a few hundredths between random streams, so a change is measured
on 3 seeds of a fold (mean and standard deviation) or on every fold. Each seed is a copy of the
config with `seed` and `name` changed (`layout.seed_name`: `best-%s` -> `best-seed1-%s`; so is
`init.name`, and each seed starts from its own copy of the init config; so is
`data.pseudo_labels`, and a seed's missing set is made from that seed's run); the config's own seed
keeps the config as it is, so a run already trained counts. `seed` drives only training
(`crossvalidation.split_seed` the folds), so every copy validates on the same images. Folds
already complete are not retrained and an interrupted one resumes (`cross_validation`); with
`jobs` several folds (seeds) train at once as child processes, each from its copy's file in the
outputs' configs folder. Given several configs (a baseline first, then one technique each), it
prints a table of every config's mean, standard deviation, change against the baseline and
minutes per fold.
"""

import json
import statistics
from pathlib import Path

from .config import Config, load_config, override, save_config
from .cross_validation import check_folds_in_range, missing_folds, train_tasks
from .errors import UserError
from .fold_pool import FoldTask
from .layout import Outputs, base_run, fold_run, parse_round_run, round_run, seed_name, seed_run
from .pseudo_labels import load_manifest, make_pseudo_labels


def seed_config(config: Config, seed: int) -> Config:
    """`config` under training seed `seed`: itself for its own seed, else a renamed copy."""
    if seed == config.seed:
        return config
    changes = {"seed": seed, "name": seed_name(config.name, seed)}
    if config.init.name:  # start from the init config's copy under the same seed
        changes["init"] = {"name": seed_name(config.init.name, seed)}
    if config.data.pseudo_labels:  # and train with the pseudo-labels of that seed's run
        changes["data"] = {"pseudo_labels": seed_run(config.data.pseudo_labels, seed)}
    return override(config, changes)


def ensure_pseudo_labels(config: Config, folds: list[int], data_folder, outputs_folder) -> None:
    """Make the config's pseudo-label set (a seed copy's, say), or add `folds` to it, from its
    source run's trained folds with the default selection; a set that has them is left alone."""
    name = config.data.pseudo_labels
    if not name:
        return
    outputs = Outputs(Path(outputs_folder))
    made = (
        load_manifest(outputs, name)["folds"] if outputs.pseudo_set(name).manifest.is_file() else []
    )
    if set(folds) - set(made):
        root, round_ = parse_round_run(name)
        make_pseudo_labels(outputs_folder, data_folder, round_run(root, round_ - 1), round_)


def fold_metrics(config: Config, fold: int, outputs_folder: Path) -> dict:
    """The metrics a complete fold of `config` recorded."""
    run = Outputs(Path(outputs_folder)).run(fold_run(base_run(config), fold))
    return json.loads(run.metrics.read_text())


def fold_minutes(metrics: dict) -> float:
    """Minutes a fold spent training (its epochs, validation passes included) and predicting its
    validation and test images: the sum of its recorded parts, so a resumed fold's pauses
    between epochs do not count."""
    seconds = sum(metrics.get(f"{stage}_seconds", 0.0) for stage in ("stage1", "stage2"))
    for images in ("validation", "test"):
        rate = metrics.get(f"{images}_predict_images_per_second")
        seconds += metrics[f"{images}_images"] / rate if rate else 0.0
    return seconds / 60


def spread(scores: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation); the deviation is 0 for a single score."""
    return statistics.mean(scores), statistics.stdev(scores) if len(scores) > 1 else 0.0


def train_seeds(
    config: Config,
    config_file: Path,
    seeds: list[int],
    folds: list[int],
    data_folder,
    outputs_folder,
    jobs: int | None = None,
) -> dict:
    """Train what is missing of `folds` under each seed, `jobs` folds at a time
    (`cross_validation.train_tasks`); returns {fold: {seed: metrics}}."""
    copies = {seed: seed_config(config, seed) for seed in seeds}
    tasks = []
    for seed, copy in copies.items():
        missing = [k for k in missing_folds(copy, outputs_folder) if k in folds]
        print(f"{base_run(copy)}: seed {seed}; training folds {missing or 'none'}", flush=True)
        if missing:
            ensure_pseudo_labels(copy, missing, data_folder, outputs_folder)
            path = copy_file(copy, Path(config_file), config, outputs_folder)
            tasks += [FoldTask(path, copy, k) for k in missing]
    train_tasks(tasks, jobs, data_folder, outputs_folder)
    return {k: {s: fold_metrics(c, k, outputs_folder) for s, c in copies.items()} for k in folds}


def copy_file(copy: Config, config_file: Path, config: Config, outputs_folder) -> Path:
    """The file of a seed's config, for a fold trained as a child process: the config file
    itself for the config's own seed, else the copy written to the outputs' configs folder."""
    if copy is config:
        return config_file
    path = Outputs(Path(outputs_folder)).derived_config(base_run(copy))
    save_config(copy, path)
    return path


def seed_stats(by_seed: dict[int, dict]) -> tuple[float, float, int]:
    """(mean, standard deviation, count) of one fold's validation scores over the seeds."""
    return (*spread([metrics["validation_score"] for metrics in by_seed.values()]), len(by_seed))


def print_spread(config: Config, results: dict[int, dict[int, dict]]) -> None:
    """One line per fold: each seed's score, their mean and standard deviation."""
    for fold, by_seed in results.items():
        listed = ", ".join(f"seed {s} {m['validation_score']:.4f}" for s, m in by_seed.items())
        mean, std, n = seed_stats(by_seed)
        print(f"{base_run(config)} fold {fold}: {listed}; mean {mean:.4f}, std {std:.4f} (n={n})")


def comparison_table(results: dict[str, dict[int, dict[int, dict]]]) -> str:
    """A Markdown table of each config (the first is the baseline): per fold the seeds' mean and
    standard deviation and the change of the mean against the baseline; mean minutes per fold."""
    baseline = {k: seed_stats(by_seed)[0] for k, by_seed in next(iter(results.values())).items()}
    head = [f"fold {k} mean ± std (n) | vs first" for k in baseline]
    lines = ["| config | " + " | ".join(head) + " | minutes per fold |"]
    lines.append("|" + " --- |" * (2 * len(baseline) + 2))
    for name, by_fold in results.items():
        cells = []
        for fold, by_seed in by_fold.items():
            mean, std, n = seed_stats(by_seed)
            cells.append(f"{mean:.4f} ± {std:.4f} ({n}) | {mean - baseline[fold]:+.4f}")
        minutes = statistics.mean(fold_minutes(m) for s in by_fold.values() for m in s.values())
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    return "\n".join(lines)


def load_configs(config_files: list[Path], folds: list[int]) -> list[Config]:
    """The configs, each checked to have `folds`, their run names distinct."""
    configs = [load_config(path) for path in config_files]
    names = {}
    for path, config in zip(config_files, configs, strict=True):
        check_folds_in_range(folds, config)
        if base_run(config) in names:
            raise UserError(
                f"{path}: same run name as {names[base_run(config)]} ({base_run(config)})"
            )
        names[base_run(config)] = path
    return configs


def run_seeds(
    config_files: list[Path],
    seeds: list[int],
    folds: list[int],
    data_folder,
    outputs_folder,
    jobs: int | None = None,
) -> dict[str, dict[int, dict[int, dict]]]:
    """Train `folds` of each config under each seed (what is missing; config by config, so a
    pseudo-label config can follow the config its sets come from), print each fold's spread
    and, for several configs, the comparison table; returns {run: {fold: {seed: metrics}}}."""
    results = {}
    for path, config in zip(config_files, load_configs(config_files, folds), strict=True):
        trained = train_seeds(config, path, seeds, folds, data_folder, outputs_folder, jobs)
        results[base_run(config)] = trained
        print_spread(config, trained)
    if len(results) > 1:
        print(comparison_table(results))
    return results
