"""Download the outputs of an experiment's finished fold jobs into the local outputs folder.

    python code/azureml-collect-outputs.py --experiment-name tgs-unet-resnet

Afterwards `python code/ensemble.py --run <run>` averages the folds as for local ones. Failed
and unfinished jobs are listed, and make the command exit with status 2 after the others are
downloaded.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.azureml import add_workspace_argument  # noqa: E402
from tgssalt.cli import add_outputs_folder_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The experiment, the outputs folder, --overwrite and the workspace config."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment-name", required=True, help="Azure ML experiment name")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="download folds that are already complete in the outputs folder again",
    )
    add_outputs_folder_argument(parser)
    add_workspace_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Collect the experiment's finished fold jobs."""
    args = parse_args(argv)
    from tgssalt.azureml.collect import collect_outputs

    collect_outputs(
        args.experiment_name, args.outputs_folder, args.overwrite, args.workspace_config
    )


if __name__ == "__main__":
    run_cli(main)
