"""Start a fold's model from another config's trained model of the same fold (`init` keys).

Configs that share stage 1 and differ only in stage 2 (a loss, a schedule, weight averaging)
need not train stage 1 again: each sets `stage1.epochs` to 0 and `init` to the shared config,
and every fold starts stage 2 from that config's `stage1.keras` of the same fold. The two must
use the same folds: a model trained on another split has seen this fold's validation images,
and the validation score would leak.
"""

import json
from pathlib import Path

import keras

from .config import Config, config_difference
from .errors import UserError
from .layout import Outputs, RunOutputs, fold_run, run_name

_ARCHITECTURE = ("input", "model", "encoder")  # the config sections that shape the weights


def init_outputs(config: Config, outputs: Outputs, fold: int | None) -> RunOutputs | None:
    """The run whose model fold `fold` starts from; None without `init.name`."""
    if not config.init.name:
        return None
    return outputs.run(fold_run(run_name(config.init.name, config.init.version), fold))


def check_init(config: Config, outputs: Outputs, fold: int | None) -> None:
    """Before a fold writes anything: its init model exists, of the same model keys, trained
    on the same folds."""
    source = init_outputs(config, outputs, fold)
    if source is None:
        return
    path = source.model(config.init.stage)
    if not path.is_file() or not source.config.is_file():
        raise UserError(
            f"key 'init.name': {path} not found; train {source.run} first "
            f"(its {config.init.stage} model starts this fold)"
        )
    saved, ours = json.loads(source.config.read_text()), config.to_dict()
    if saved.get("crossvalidation") != ours["crossvalidation"]:
        raise UserError(
            f"key 'init.name': {source.run} was trained on other folds (crossvalidation "
            f"{saved.get('crossvalidation')}); it has seen this fold's validation images"
        )
    model_keys = {key: saved.get(key) for key in _ARCHITECTURE}
    difference = config_difference(model_keys, {key: ours[key] for key in _ARCHITECTURE})
    if difference is not None:
        raise UserError(
            f"key 'init.name': {source.run} is another model ({difference}); init needs the "
            "same input and model keys"
        )


def load_init_weights(model: keras.Model, path: Path) -> None:
    """Set `model`'s weights to those of the stage model saved at `path`, which wraps a model
    of the same architecture (`models.with_sigmoid` adds no weights)."""
    source = keras.saving.load_model(path, compile=False).get_weights()
    shapes = [w.shape for w in model.get_weights()]
    if [w.shape for w in source] != shapes:
        raise UserError(
            f"{path}: its weights ({len(source)} arrays) do not match this config's model "
            f"({len(shapes)}); init needs the same architecture and a single model, "
            "not a snapshot average"
        )
    model.set_weights(source)


def start_from_init(model: keras.Model, config: Config, out: RunOutputs) -> None:
    """Load the init run's model of `out`'s fold into `model` (nothing without `init.name`); a
    resumed stage then restores its own checkpoint over it."""
    source = init_outputs(config, Outputs(out.root), out.fold)
    if source is not None:
        load_init_weights(model, source.model(config.init.stage))
        print(f"{out.run}: starts from {source.run}'s {config.init.stage} model (init)")
