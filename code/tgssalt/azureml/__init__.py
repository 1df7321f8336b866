"""Scaling folds out to an Azure Machine Learning GPU cluster with the SDK v2 (`azure-ai-ml`).

The original project submitted one Azure ML job per cross-validation fold to a Batch AI cluster
with the retired v1 SDK; this subpackage does the same with the current SDK:

- `workspace`: connecting (the repository's workspace config, sign-in), the data asset, the GPU
  cluster;
- `environment`: the jobs' environment (a conda spec built from the pinned requirements);
- `jobs`: one command job per fold, submitted or written as YAML (`--dry-run`);
- `recipe`: the whole recipe as one pipeline, the folds in parallel and then the ensemble;
- `gpu`: the jobs' first step, failing at once when JAX cannot use the node's GPU;
- `collect`: downloading finished jobs' outputs into the local outputs layout.

`azure-ai-ml` and `azure-identity` are optional (`requirements-azure.txt`): they are imported
inside functions only, so the core package and its tests import without them, and every entry
point calls `require_azure` first for a one-line install hint instead of an ImportError.
"""

import argparse
from pathlib import Path

from ..errors import UserError
from ..paths import REPO_ROOT

AML_CONFIG_FOLDER = REPO_ROOT / "aml_config"
CODE_FOLDER = REPO_ROOT / "code"
DEFAULT_COMPUTE = "tgschallenge"
DEFAULT_DATA_ASSET = "tgs-data"
INSTALL_HINT = (
    "the Azure ML packages are not installed: run `python -m pip install --upgrade pip` and then "
    "`python -m pip install -r requirements-azure.txt` (from the repository root)"
)


def require_azure() -> None:
    """Fail with one line saying what to install when `azure-ai-ml`/`azure-identity` are absent."""
    try:
        import azure.ai.ml  # noqa: F401
        import azure.identity  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    """`--workspace-config`: the workspace's config.json (default: found from the repo root)."""
    parser.add_argument(
        "--workspace-config",
        type=Path,
        default=None,
        help="the workspace's config.json, or a folder holding .azureml/config.json, "
        "aml_config/config.json or config.json (default: the repository's .azureml/config.json, "
        "else aml_config/config.json; never a folder above the repository)",
    )
