"""One Azure ML command job per cross-validation fold, submitted or written as YAML.

Each job uploads `code/`, runs the entry script (`train_fold.py`) with `--cv-currentfold k`,
reads the registered data asset (downloaded to the node) as `--data-folder` and writes the fold's
outputs to the job output `outputs` as `--outputs-folder`: the same layout as a local fold, which
`collect` brings back. The output is mounted read-write (not uploaded at the end) at a datastore
path fixed per experiment and fold run (`output_path`), so that every epoch's resume checkpoint
is in the datastore at once: a preempted low-priority node's job, restarted by Azure ML, and a
failed fold submitted again both resume from the last complete epoch, as a local rerun does.
`--dry-run` writes the jobs as YAML files that `azure.ai.ml.load_job` and `az ml job create -f`
read, with paths relative to the file.
"""

import io
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text
from ..config import load_config
from ..errors import UserError
from ..layout import base_run, ensemble_run, fold_run, fold_subset
from . import CODE_FOLDER, DEFAULT_COMPUTE, DEFAULT_DATA_ASSET, require_azure
from .environment import JOB_ENVIRONMENT_VARIABLES, job_environment

GPU_CHECK = "python -m tgssalt.azureml.gpu"  # fails the job at once when JAX has no GPU
OUTPUT_DATASTORE = "workspaceblobstore"  # every workspace's default blob datastore
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")


@dataclass(frozen=True)
class RunSpec:
    """What to submit: the original's flags of `azureml-submit-run.py`."""

    config_file: str
    experiment: str
    entry_script: str = "train_fold.py"
    compute: str = DEFAULT_COMPUTE
    folds: list[int] | None = None
    data_asset: str = DEFAULT_DATA_ASSET
    docker: bool = False


def in_code_folder(path_text: str, what: str) -> str:
    """`path_text` (from the working directory, or from code/) as a path relative to code/.

    Only code/ is uploaded with a job, so the config and the entry script must be inside it.
    The original's spellings are accepted: Windows separators (`train-config\\unet-resnet.json`)
    and its entry script's name `train-fold.py` (now `train_fold.py`, importable).
    """
    path = Path(path_text.replace("\\", "/"))
    names = [path, path.with_name(path.name.replace("-", "_"))] if path.suffix == ".py" else [path]
    candidates = [folder / name for name in names for folder in (Path(), CODE_FOLDER)]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is None:
        raise UserError(f"{path_text}: {what} not found (looked here and in {CODE_FOLDER})")
    resolved = found.resolve()
    if not resolved.is_relative_to(CODE_FOLDER):
        raise UserError(
            f"{path_text}: the {what} must be inside {CODE_FOLDER}, the folder a job uploads"
        )
    return resolved.relative_to(CODE_FOLDER).as_posix()


def output_path(experiment: str, run: str) -> str:
    """The fold's outputs on the workspace's default datastore: the same path for every job of
    one experiment and fold run, so a fold resubmitted after a failure finds its last resume
    checkpoint there and continues (a per-job default path would start it from epoch 0)."""
    return f"azureml://datastores/{OUTPUT_DATASTORE}/paths/tgssalt/{experiment}/{run}/"


def data_input_path(asset: str) -> str:
    """`tgs-data` -> `azureml:tgs-data@latest`; `tgs-data:3` -> `azureml:tgs-data:3`."""
    name, _, version = asset.removeprefix("azureml:").partition(":")
    if not name:
        raise UserError(f"{asset!r}: expected a data asset name, e.g. tgs-data or tgs-data:3")
    return f"azureml:{name}:{version}" if version else f"azureml:{name}@latest"


def check_folds(folds: list[int] | None, n_folds: int) -> list[int]:
    """The folds to submit (default: all of the config's), each checked against `n_folds`."""
    if n_folds < 2:
        raise UserError(f"the config has crossvalidation.folds {n_folds}: scale-out needs >= 2")
    folds = list(range(n_folds)) if folds is None else folds
    wrong = [fold for fold in folds if not 0 <= fold < n_folds]
    if wrong:
        raise UserError(
            f"fold(s) {wrong} out of range: the config has {n_folds} folds (0 to {n_folds - 1})"
        )
    return folds


def fold_command(entry: str, config: str, fold: int | str) -> str:
    """The job's command line: the GPU check (`gpu.py`), then the entry script with the
    original's flags."""
    return (
        f"{GPU_CHECK} && python {shlex.quote(entry)} --config-file {shlex.quote(config)} "
        f"--cv-currentfold {fold}"
        " --data-folder ${{inputs.data}} --outputs-folder ${{outputs.outputs}}"
    )


def refuse_other_runs(config, config_path: str) -> None:
    """Refuse a config whose folds read another run's files: a fold job's outputs folder holds
    its own run only, so the job would fail after the cluster has started."""
    needs = {"init.name": config.init.name, "data.pseudo_labels": config.data.pseudo_labels}
    for key, run in needs.items():
        if run:
            raise UserError(
                f"{config_path}: key '{key}' reads {run!r} from the outputs folder, which a fold "
                "job does not have; train this config locally (run_folds.py)"
            )


@dataclass(frozen=True)
class Plan:
    """A checked submission: paths relative to code/, the run names and the environment."""

    config_path: str
    entry: str
    base: str
    runs: dict  # fold -> run name
    environment: object
    ensemble: str  # the fold ensemble's run name: tagged when only some folds are submitted


def plan(spec: RunSpec) -> Plan:
    """Check the spec and load the config locally, before anything is built or submitted."""
    require_azure()
    if not EXPERIMENT_NAME.fullmatch(spec.experiment):
        raise UserError(
            f"{spec.experiment!r}: an experiment name has letters, digits, '-' and '_' only"
        )
    config_path = in_code_folder(spec.config_file, "config file")
    entry = in_code_folder(spec.entry_script, "entry script")
    config = load_config(CODE_FOLDER / config_path)
    refuse_other_runs(config, config_path)
    folds = check_folds(spec.folds, config.crossvalidation.folds)
    base = base_run(config)
    runs = {fold: fold_run(base, fold) for fold in folds}
    ensemble = ensemble_run(base, fold_subset(folds, config.crossvalidation.folds))
    return Plan(config_path, entry, base, runs, job_environment(spec.docker), ensemble)


def fold_jobs(spec: RunSpec) -> dict:
    """`{run name: CommandJob}`, one job per fold, the config loaded and checked locally first."""
    p = plan(spec)
    jobs = {}
    for fold, run in p.runs.items():
        tags = {"fold": str(fold), "run": run, "base": p.base, "config": p.config_path}
        command = fold_command(p.entry, p.config_path, fold)
        jobs[run] = fold_job(spec, command, p.environment, tags)
    return jobs


def recipe_job(spec: RunSpec):
    """The whole recipe as one pipeline job (`recipe.recipe_pipeline`)."""
    from .recipe import recipe_pipeline

    p = plan(spec)
    template = fold_command(p.entry, p.config_path, "${{inputs.fold}}")
    return recipe_pipeline(spec, template, p)


def fold_job(spec: RunSpec, command: str, environment, tags: dict):
    """One fold's `CommandJob`: code/, the data asset as input, `outputs` as output."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities import CommandJob

    return CommandJob(
        command=command,
        code=str(CODE_FOLDER),
        environment=environment,
        compute=spec.compute,
        experiment_name=spec.experiment,
        display_name=tags["run"],
        description=f"{tags['run']}: fold {tags['fold']} of {tags['config']}",
        inputs={
            "data": Input(type="uri_folder", path=data_input_path(spec.data_asset), mode="download")
        },
        outputs={
            "outputs": Output(
                type="uri_folder", mode="rw_mount", path=output_path(spec.experiment, tags["run"])
            )
        },
        environment_variables=dict(JOB_ENVIRONMENT_VARIABLES),
        tags=tags,
    )


def job_yaml(job, folder: Path) -> str:
    """A job as YAML for a file in `folder`, its local paths made relative to that folder.

    The SDK dumps `code` and a Docker build context as absolute local paths; relative ones
    make the file work from any clone (`az ml job create -f` resolves them from the file).
    """
    import yaml

    stream = io.StringIO()
    job.dump(stream)
    spec = yaml.safe_load(stream.getvalue())
    spec["code"] = os.path.relpath(CODE_FOLDER, folder)
    environment = spec["environment"]
    for key in ("name", "version", "tags"):  # the SDK's anonymous name and content hash
        environment.pop(key, None)
    if "build" in environment:
        environment["build"]["path"] = os.path.relpath(environment["build"]["path"], folder)
    header = f"# {job.display_name}: az ml job create -f <this file> -g GROUP -w WORKSPACE\n"
    return header + yaml.safe_dump(spec, sort_keys=False)


def write_job_yamls(jobs: dict, folder: Path) -> list[Path]:
    """Write each job as `<folder>/<run>.yml`, atomically; return the paths."""
    folder = Path(folder).resolve()
    paths = []
    for run, job in jobs.items():
        path = folder / f"{run}.yml"
        write_text(path, job_yaml(job, folder))
        paths.append(path)
    return paths


def submit_jobs(client, jobs: dict) -> list:
    """Submit each job; print its name and studio URL; return the created jobs."""
    from .workspace import azure_errors

    created = []
    for run, job in jobs.items():
        with azure_errors(f"submitting {run}"):
            done = client.jobs.create_or_update(job)
        print(f"{run}: submitted job {done.name}  {done.studio_url}")
        created.append(done)
    return created


def submit_run(
    spec: RunSpec,
    outputs_folder: Path,
    dry_run: bool,
    workspace_config=None,
    client=None,
    pipeline: bool = False,
):
    """Build the fold jobs (or, with `pipeline`, the one recipe pipeline); write them as YAML
    (`dry_run`, no network) or submit them."""
    jobs = {"pipeline": recipe_job(spec)} if pipeline else fold_jobs(spec)
    if dry_run:
        folder = Path(outputs_folder) / "azureml" / spec.experiment
        if pipeline:
            from .recipe import write_pipeline_yaml

            paths = [write_pipeline_yaml(jobs["pipeline"], folder)]
        else:
            paths = write_job_yamls(jobs, folder)
        for path in paths:
            print(f"wrote {path}")
        print(f"dry run: {len(paths)} job(s) written, nothing submitted")
        return paths
    if client is None:
        from .workspace import connect

        client = connect(workspace_config)
    return submit_jobs(client, jobs)
