"""Submit one Azure ML job per cross-validation fold to a GPU cluster (Azure ML SDK v2).

    python code/azureml-submit-run.py --config-file code/train-config/unet-resnet.json \
        --entry-script train_fold.py --experiment-name tgs-unet-resnet [--pipeline]

The original's command line works too, from code/ and with Windows separators:
`python azureml-submit-run.py --config-file train-config\\unet-resnet.json --entry-script
train-fold.py --experiment-name production`.

Each job runs the entry script (in code/) with --cv-currentfold k on the cluster, reading the
registered data asset and writing the fold's outputs to the job's `outputs` output; fetch them
with code/azureml-collect-outputs.py. --pipeline submits one pipeline instead: the folds in
parallel, then their ensemble, ending in the submission CSV. --dry-run writes the jobs (or the
pipeline) as YAML files under outputs/azureml/<experiment>/ (no network, no credentials).
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the config check imports Keras

from tgssalt.azureml import DEFAULT_COMPUTE, DEFAULT_DATA_ASSET, add_workspace_argument  # noqa: E402
from tgssalt.cli import add_folds_argument, add_outputs_folder_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The original's flags, plus the cluster, the folds, the data asset and --dry-run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="JSON training config inside code/")
    parser.add_argument(
        "--entry-script", default="train_fold.py", help="script in code/ (default train_fold.py)"
    )
    parser.add_argument("--experiment-name", required=True, help="Azure ML experiment name")
    parser.add_argument(
        "--compute", default=DEFAULT_COMPUTE, help=f"cluster name (default {DEFAULT_COMPUTE})"
    )
    add_folds_argument(parser, "submit, e.g. 0,1,2,3 (default: all of the config's)")
    parser.add_argument(
        "--data-asset",
        default=DEFAULT_DATA_ASSET,
        help=f"data asset NAME or NAME:VERSION (default {DEFAULT_DATA_ASSET}, latest version)",
    )
    parser.add_argument(
        "--docker",
        action="store_true",
        help="build the environment from aml_config/environment/Dockerfile",
    )
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="one pipeline for the whole recipe: the folds in parallel, then the ensemble, "
        "whose submission CSV is the pipeline's output `submission`",
    )
    parser.add_argument("--dry-run", action="store_true", help="write job YAMLs, submit nothing")
    add_outputs_folder_argument(parser)
    add_workspace_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build the fold jobs and submit them (or write them with --dry-run)."""
    args = parse_args(argv)
    from tgssalt.azureml.jobs import RunSpec, submit_run

    spec = RunSpec(
        config_file=args.config_file,
        experiment=args.experiment_name,
        entry_script=args.entry_script,
        compute=args.compute,
        folds=args.folds,
        data_asset=args.data_asset,
        docker=args.docker,
    )
    submit_run(
        spec, args.outputs_folder, args.dry_run, args.workspace_config, pipeline=args.pipeline
    )


if __name__ == "__main__":
    run_cli(main)
