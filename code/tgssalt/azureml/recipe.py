"""The whole recipe as one Azure ML pipeline: the folds in parallel, then their ensemble.

Each fold step runs the same command as a one-fold job (`jobs.fold_command`) and writes to the
same datastore path (`jobs.output_path`), so a fold trained by an earlier job or pipeline of the
experiment resumes or is skipped as complete. The ensemble step gathers the folds' predictions,
runs `ensemble.py` on them with the data asset, and puts the ensemble's submission CSV and its
summary JSON in the pipeline's output `submission`. `--pipeline --dry-run` writes the pipeline as
one YAML file that `azure.ai.ml.load_job` and `az ml job create -f` read.
"""

import io
import os
from pathlib import Path

from ..atomic import write_text
from . import CODE_FOLDER
from .environment import JOB_ENVIRONMENT_VARIABLES

SUBMISSION_OUTPUT = "submission"


def fold_component(command: str, environment):
    """The fold step: `command` with `${{inputs.fold}}` for the fold number."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml import command as command_builder

    return command_builder(
        name="tgs_fold",
        display_name="train one fold",
        command=command,
        code=str(CODE_FOLDER),
        environment=environment,
        inputs={"data": Input(type="uri_folder", mode="download"), "fold": Input(type="integer")},
        outputs={"outputs": Output(type="uri_folder", mode="rw_mount")},
        environment_variables=dict(JOB_ENVIRONMENT_VARIABLES),
        # never reuse an earlier step's result: train_fold.py itself skips a complete fold and
        # resumes an interrupted one from the fold's datastore path
        is_deterministic=False,
    )


def ensemble_command(base: str, ensemble: str, folds: list[int]) -> str:
    """Copy each fold's predictions into one outputs folder, ensemble, keep the submission and
    summary of run `ensemble` (`layout.ensemble_run`: tagged when only some folds are there)."""
    gather = " && ".join(
        f"cp -r ${{{{inputs.fold{k}}}}}/predictions/. gathered/predictions/" for k in folds
    )
    return (
        f"mkdir -p gathered/predictions && {gather} && "
        f"python ensemble.py --run {base} --data-folder ${{{{inputs.data}}}} "
        "--outputs-folder gathered && "
        f"cp gathered/submissions/{ensemble}-submission.csv "
        f"gathered/models/{ensemble}.json ${{{{outputs.{SUBMISSION_OUTPUT}}}}}/"
    )


def ensemble_component(plan):
    """The ensemble step of a `jobs.Plan`: the data and every fold's outputs in, the submission
    out."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml import command as command_builder

    folds = list(plan.runs)
    inputs = {"data": Input(type="uri_folder", mode="download")}
    inputs |= {f"fold{k}": Input(type="uri_folder", mode="ro_mount") for k in folds}
    return command_builder(
        name="tgs_ensemble",
        display_name="ensemble the folds",
        command=ensemble_command(plan.base, plan.ensemble, folds),
        code=str(CODE_FOLDER),
        environment=plan.environment,
        inputs=inputs,
        outputs={SUBMISSION_OUTPUT: Output(type="uri_folder")},
        # no JAX_PLATFORMS: the ensemble is numpy work and needs no GPU
        environment_variables={"KERAS_BACKEND": JOB_ENVIRONMENT_VARIABLES["KERAS_BACKEND"]},
    )


def recipe_pipeline(spec, fold_template: str, plan):
    """The `PipelineJob` of a checked `jobs.Plan`: `fold<k>` steps, then `ensemble`."""
    from azure.ai.ml import Input, dsl

    from .jobs import data_input_path, output_path

    base, runs = plan.base, plan.runs
    folds = list(runs)
    train = fold_component(fold_template, plan.environment)
    ensemble = ensemble_component(plan)

    shown = ", ".join(map(str, folds))

    @dsl.pipeline(name=f"{base}-recipe", display_name=f"{base}: folds {shown}, then ensemble")
    def recipe(data):
        steps = {}
        for k in folds:
            step = train(data=data, fold=k)
            step.name, step.display_name = f"fold{k}", runs[k]
            step.outputs.outputs.path = output_path(spec.experiment, runs[k])
            steps[f"fold{k}"] = step.outputs.outputs
        final = ensemble(data=data, **steps)
        final.name = "ensemble"
        return {SUBMISSION_OUTPUT: final.outputs[SUBMISSION_OUTPUT]}

    job = recipe(data=Input(type="uri_folder", path=data_input_path(spec.data_asset)))
    job.settings.default_compute = spec.compute
    job.experiment_name = spec.experiment
    job.tags = {"base": base, "folds": ",".join(map(str, folds))}
    return job


def pipeline_yaml(job, folder: Path) -> str:
    """The pipeline as YAML for a file in `folder`: each step's code (and Docker build context)
    relative to the file, the SDK's anonymous environment names dropped, and the environment
    written once per step (in its component, which the step inherits)."""
    import yaml

    stream = io.StringIO()
    job.dump(stream)
    spec = yaml.safe_load(stream.getvalue())
    for step in spec["jobs"].values():
        step.pop("environment", None)
        step.pop("environment_variables", None)
        component = step["component"]
        component["code"] = os.path.relpath(CODE_FOLDER, folder)
        environment = component["environment"]
        for key in ("name", "version", "tags"):
            environment.pop(key, None)
        if "build" in environment:
            environment["build"]["path"] = os.path.relpath(environment["build"]["path"], folder)
    header = f"# {job.display_name}: az ml job create -f <this file> -g GROUP -w WORKSPACE\n"
    return header + yaml.safe_dump(spec, sort_keys=False)


def write_pipeline_yaml(job, folder: Path) -> Path:
    """Write the pipeline as `<folder>/<base>-pipeline.yml`, atomically; return the path."""
    folder = Path(folder).resolve()
    path = folder / f"{job.tags['base']}-pipeline.yml"
    write_text(path, pipeline_yaml(job, folder))
    return path
