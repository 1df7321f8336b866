"""Check the connection to the Azure ML workspace: print its name and location.

    python aml_config/test.py

Reads the repository's workspace config (.azureml/config.json, else aml_config/config.json, or
--workspace-config) and signs in with `az login` or the AZURE_* environment variables of a
service principal, else, at a terminal, in a browser or with a device code.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

from tgssalt.azureml import add_workspace_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Connect, fetch the workspace and describe it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_workspace_argument(parser)
    args = parser.parse_args(argv)
    from tgssalt.azureml.workspace import connect, workspace_summary

    print(workspace_summary(connect(args.workspace_config)))


if __name__ == "__main__":
    run_cli(main)
