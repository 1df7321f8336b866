"""Regenerate aml_config/environment/conda.yaml, the jobs' environment, from the requirements.

    python aml_config/update-environment.py

Run it after changing requirements.txt or requirements-gpu.txt (a test fails until then).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

from tgssalt.errors import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Write the conda spec and say where."""
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    from tgssalt.azureml.environment import write_conda_spec

    print(f"wrote {write_conda_spec()}")


if __name__ == "__main__":
    run_cli(main)
