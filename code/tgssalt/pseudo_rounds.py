"""Pseudo-label rounds in one resumable chain: what `run_rounds.py` runs.

Round 0 trains the config's folds and ensembles them (`cross_validation.run_recipe`); each later
round r makes the pseudo-label set `<root>-pseudo<r>` from round r-1's folds
(`pseudo_labels.py`), writes the config of round r (the given one with `data.pseudo_labels` set,
`configs/<root>-pseudo<r>.json`) and trains and ensembles its folds the same way. A step whose
outputs exist is skipped (a round whose folds and complete ensemble exist, a set already made),
and an interrupted fold resumes, so a killed chain continues where it stopped when rerun.
"""

import json
from pathlib import Path

from .config import Config, load_config, override, save_config
from .cross_validation import missing_folds, run_recipe
from .errors import UserError
from .layout import Outputs, base_run, parse_round_run
from .pseudo_labels import Selection, make_pseudo_labels


def run_rounds(
    config_file: Path,
    last_round: int,
    data_folder: Path,
    outputs_folder: Path,
    selection: Selection | None = None,
    jobs: int | None = None,
) -> dict:
    """Train the config's round and every later one up to `last_round`; return the last round's
    ensemble summary."""
    config = load_config(config_file)
    first = parse_round_run(base_run(config))[1]
    if last_round < first:
        raise UserError(f"--rounds {last_round}: {base_run(config)} is round {first} already")
    summary = train_round(Path(config_file), config, data_folder, outputs_folder, jobs)
    for round_ in range(first + 1, last_round + 1):
        made = make_pseudo_labels(outputs_folder, data_folder, base_run(config), round_, selection)
        config = override(config, {"data": {"pseudo_labels": made["set"]}})
        round_file = Outputs(Path(outputs_folder)).derived_config(base_run(config))
        save_config(config, round_file)
        summary = train_round(round_file, config, data_folder, outputs_folder, jobs)
    return summary


def train_round(
    config_file: Path, config: Config, data_folder: Path, outputs_folder: Path, jobs: int | None
) -> dict:
    """One round's folds and ensemble, unless every fold and a complete ensemble exist."""
    base = base_run(config)
    ensemble = Outputs(Path(outputs_folder)).ensemble(base).summary
    if ensemble.is_file() and not missing_folds(config, Path(outputs_folder)):
        summary = json.loads(ensemble.read_text())
        if summary.get("complete"):
            print(f"{base}: every fold and the ensemble are complete ({ensemble}); skipped")
            return summary
    return run_recipe([config_file], data_folder, outputs_folder, jobs)
