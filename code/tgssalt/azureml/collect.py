"""Bringing finished fold jobs' outputs home, into the local outputs layout.

Each fold job writes what a local fold writes (models/, predictions/, figures/, ...) to its
`outputs` output; downloading it into the outputs folder lets `code/ensemble.py` average the
folds exactly as for folds trained here. Jobs are grouped by fold run (their `run` tag, else
their display name); of several jobs for one run (a resubmitted fold) the newest completed one
is used. Failed and unfinished runs are listed and make the command fail after the others are
downloaded, so a missing fold is never skipped silently.
"""

import contextlib
import logging
import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from ..layout import fold_complete, parse_fold_run
from .workspace import azure_errors, connect

COMPLETED = "Completed"
FAILED = frozenset({"Failed", "Canceled", "NotResponding"})
OUTPUT_NAME = "outputs"


def experiment_jobs(client, experiment: str) -> list:
    """The fold jobs of `experiment` in the workspace: its command jobs, and the fold steps of
    its recipe pipelines (a step's display name is its fold run)."""
    with azure_errors(f"listing the jobs of experiment {experiment}"):
        jobs = [job for job in client.jobs.list() if job.experiment_name == experiment]
        steps = []
        for pipeline in (job for job in jobs if getattr(job, "type", None) == "pipeline"):
            print(
                f"pipeline {pipeline.name} ({pipeline.status}): its submission CSV with "
                f"az ml job download --name {pipeline.name} --output-name submission"
            )
            children = client.jobs.list(parent_job_name=pipeline.name)
            steps += [step for step in children if parse_fold_run(run_of(step))[1] is not None]
    return [job for job in jobs if getattr(job, "type", None) != "pipeline"] + steps


def _created(job) -> float:
    """A job's creation time as a timestamp (0 when unknown), for newest-first ordering."""
    created = getattr(getattr(job, "creation_context", None), "created_at", None)
    return created.timestamp() if created is not None else 0.0


def run_of(job) -> str:
    """The fold run a job trained: its `run` tag (set at submission), else its display name."""
    return (job.tags or {}).get("run") or job.display_name or job.name


def pick_jobs(jobs: list) -> dict:
    """`{run: job}`: per run, the newest completed job, else the newest job."""
    by_run = defaultdict(list)
    for job in jobs:
        by_run[run_of(job)].append(job)
    picked = {}
    for run, group in by_run.items():
        group.sort(key=_created, reverse=True)
        picked[run] = next((job for job in group if job.status == COMPLETED), group[0])
    return dict(sorted(picked.items()))


# The SDK's storage helpers log a multi-line "exceeds 100 MB, use AzCopy" warning for every
# file once a download passes 100 MB in all: a fold's outputs always do (its models).
SIZE_WARNING_LOGGERS = tuple(
    f"azure.ai.ml._artifacts._{kind}_storage_helper" for kind in ("blob", "gen2", "fileshare")
)


@contextlib.contextmanager
def quiet_size_warning() -> Iterator[None]:
    """Silence the SDK's per-file large-download warning inside the block."""
    loggers = [logging.getLogger(name) for name in SIZE_WARNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def download_outputs(client, job, outputs_folder: Path) -> int:
    """Download a job's `outputs` into `outputs_folder`; return how many files came.

    The download lands in a staging folder inside the outputs folder, then each file is
    renamed into place (atomic, same file system), so a broken download leaves no half files.
    """
    staging = Path(outputs_folder) / "azureml" / "downloads" / job.name
    shutil.rmtree(staging, ignore_errors=True)
    with azure_errors(f"downloading the outputs of job {job.name}"), quiet_size_warning():
        client.jobs.download(job.name, download_path=staging, output_name=OUTPUT_NAME)
    source = staging / "named-outputs" / OUTPUT_NAME
    if not source.is_dir():
        raise UserError(f"job {job.name} has no '{OUTPUT_NAME}' output to download")
    files = sorted(path for path in source.rglob("*") if path.is_file())
    for path in files:
        target = Path(outputs_folder) / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
    shutil.rmtree(staging)
    return len(files)


def collect_one(client, run: str, job, outputs_folder: Path, overwrite: bool) -> str:
    """Download one run's job if it completed; print what happened; return its category."""
    if job.status in FAILED:
        print(f"{run}: job {job.name} {job.status}, not collected  {job.studio_url}")
        return "failed"
    if job.status != COMPLETED:
        print(f"{run}: job {job.name} still {job.status}, not collected  {job.studio_url}")
        return "unfinished"
    if fold_complete(outputs_folder, run) and not overwrite:
        print(f"{run}: already in {outputs_folder} (job {job.name}); --overwrite to replace it")
        return "present"
    count = download_outputs(client, job, outputs_folder)
    print(f"{run}: downloaded {count} files from job {job.name}")
    return "downloaded"


def collect_outputs(
    experiment: str, outputs_folder: Path, overwrite=False, workspace_config=None, client=None
) -> dict:
    """Collect every fold run of `experiment`; `{category: [runs]}`. Fails after downloading
    when some runs failed or are unfinished, naming them."""
    client = connect(workspace_config) if client is None else client
    picked = pick_jobs(experiment_jobs(client, experiment))
    if not picked:
        raise UserError(f"no jobs found in experiment {experiment!r}")
    report = defaultdict(list)
    for run, job in picked.items():
        report[collect_one(client, run, job, outputs_folder, overwrite)].append(run)
    for base in sorted(
        {parse_fold_run(run)[0] for run in report["downloaded"] + report["present"]}
    ):
        print(
            f"ensemble with: python code/ensemble.py --run {base} --outputs-folder {outputs_folder}"
        )
    missing = report["failed"] + report["unfinished"]
    if missing:
        listed = "; ".join(
            f"{what} {', '.join(report[what])}" for what in ("failed", "unfinished") if report[what]
        )
        raise UserError(
            f"{len(missing)} fold run(s) not collected ({listed}): resubmit failed folds with "
            "--folds, or wait for unfinished jobs and run this again"
        )
    return dict(report)
