"""Register the Kaggle-layout data folder as a versioned Azure ML data asset (uri_folder).

    python aml_config/upload-data.py [--data-folder data] [--name tgs-data]

Uploads what training reads of the folder that holds train.csv (the CSVs and the PNGs of
train/images, train/masks and test/images; not the Kaggle zips, not data/demo/ unless it is the
folder given) to the workspace's default datastore; each run makes a new version, and jobs read
the latest unless told a version.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

from tgssalt.azureml import DEFAULT_DATA_ASSET, add_workspace_argument  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402
from tgssalt.paths import DEFAULT_DATA_FOLDER  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The data folder, the asset's name and version, the workspace config."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-folder",
        type=Path,
        default=DEFAULT_DATA_FOLDER,
        help=f"Kaggle-layout data folder, or a parent holding it as data/ "
        f"(default {DEFAULT_DATA_FOLDER})",
    )
    parser.add_argument(
        "--name", default=DEFAULT_DATA_ASSET, help=f"asset name (default {DEFAULT_DATA_ASSET})"
    )
    parser.add_argument("--version", default=None, help="asset version (default: the next one)")
    add_workspace_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Connect, upload and print the asset's name and version."""
    args = parse_args(argv)
    from tgssalt.azureml.workspace import connect, register_data

    client = connect(args.workspace_config)
    data = register_data(client, args.data_folder, args.name, args.version)
    print(f"registered data asset {data.name} version {data.version} ({data.path})")


if __name__ == "__main__":
    run_cli(main)
