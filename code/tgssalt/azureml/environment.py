"""The jobs' environment: the repo's pinned GPU requirements as a conda spec on a base image.

`aml_config/environment/conda.yaml` is generated from `requirements-gpu.txt` (which includes
`requirements.txt`) by `python aml_config/update-environment.py`, and a test keeps it in sync.
Jobs train with Keras on JAX with CUDA 12 (`KERAS_BACKEND=jax`), the project's fastest GPU
backend. One change from the local set: MLflow reports to the Azure ML studio through
`azureml-mlflow`, which requires `mlflow-skinny<=3.15.0`, so jobs get `mlflow-skinny` at that
version in place of the full `mlflow` package (the submitting machine keeps its own mlflow).
"""

import re
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError
from ..paths import REPO_ROOT
from . import AML_CONFIG_FOLDER, require_azure

ENVIRONMENT_FOLDER = AML_CONFIG_FOLDER / "environment"
CONDA_FILE = ENVIRONMENT_FOLDER / "conda.yaml"
GPU_REQUIREMENTS = REPO_ROOT / "requirements-gpu.txt"
# Azure ML's plain (non-CUDA) base image, Ubuntu 24.04 with conda, at a dated tag so that a
# rebuild gets the same image: `jax[cuda12]` brings its own CUDA and cuDNN libraries as pip
# wheels and needs only the NVIDIA driver, which Azure ML mounts into the container on a GPU
# node; the CUDA image would add about 3 GB that nothing here uses.
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi5.0-ubuntu24.04:20260901.v1"
PYTHON_VERSION = "3.11"
NOT_IN_JOBS = frozenset({"mlflow"})
JOB_ONLY = ("mlflow-skinny==3.15.0", "azureml-mlflow==1.62.0.post6")
# JAX_PLATFORMS=cuda: JAX fails at its first use when it cannot start CUDA on the node (driver,
# library mismatch), where it would otherwise warn and train on the CPU while the GPU is paid.
JOB_ENVIRONMENT_VARIABLES = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cuda"}
# `nodefaults`: recent Miniconda adds Anaconda's default channels, whose terms of service must
# be accepted interactively, so an unattended image build would stop there.
CONDA_CHANNELS = ("conda-forge", "nodefaults")


def read_requirements(path: Path) -> list[str]:
    """A pip requirements file's requirement lines, following `-r` includes, comments dropped."""
    if not path.is_file():
        raise UserError(f"{path}: requirements file not found")
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            lines += read_requirements(path.parent / line.split(maxsplit=1)[1])
        elif line:
            lines.append(line)
    return lines


def requirement_name(line: str) -> str:
    """The normalised project name of a requirement line (`jax[cuda12]==0.10.2` -> `jax`)."""
    return re.split(r"[\s\[=<>!~;@]", line, maxsplit=1)[0].lower().replace("_", "-")


def job_requirements(path: Path = GPU_REQUIREMENTS) -> list[str]:
    """The jobs' pip requirements: the pinned GPU set with `mlflow` swapped for `JOB_ONLY`."""
    lines = [line for line in read_requirements(path) if requirement_name(line) not in NOT_IN_JOBS]
    return lines + list(JOB_ONLY)


def render_conda_spec(path: Path = GPU_REQUIREMENTS) -> str:
    """The text of `aml_config/environment/conda.yaml` for the requirements in `path`."""
    pip_lines = "".join(f"      - {line}\n" for line in job_requirements(path))
    channel_lines = "".join(f"  - {channel}\n" for channel in CONDA_CHANNELS)
    return (
        "# The Azure ML jobs' environment. Generated from requirements-gpu.txt (and\n"
        "# requirements.txt) by `python aml_config/update-environment.py`: edit those, not this.\n"
        "name: tgs-salt-gpu\n"
        "channels:\n"
        f"{channel_lines}"
        "dependencies:\n"
        f"  - python={PYTHON_VERSION}\n"
        "  - pip\n"
        "  - pip:\n"
        f"{pip_lines}"
    )


def write_conda_spec(target: Path = CONDA_FILE) -> Path:
    """Regenerate the conda spec from the requirements files, atomically."""
    write_text(target, render_conda_spec())
    return target


def job_environment(docker: bool = False):
    """The jobs' `Environment`: the conda spec on `BASE_IMAGE`, or, with `docker`, the image
    built from `aml_config/environment/Dockerfile` (the same spec on the same base)."""
    require_azure()
    from azure.ai.ml.entities import BuildContext, Environment

    if docker:
        return Environment(build=BuildContext(path=str(ENVIRONMENT_FOLDER)))
    return Environment(image=BASE_IMAGE, conda_file=str(CONDA_FILE))
