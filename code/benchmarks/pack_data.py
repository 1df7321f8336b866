"""Pack a Kaggle-layout data folder into one compressed .npz, or unpack one into a new folder.

    python code/benchmarks/pack_data.py pack DATA_FOLDER OUT.npz [--limit N]
    python code/benchmarks/pack_data.py unpack IN.npz NEW_FOLDER

For machines that take the repository and a few carried files but no data folder (the GPU
machine of code/benchmarks/gpu_session.sh). --limit packs the first N train and N test images.
See tgssalt/datapack.py for what is stored.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tgssalt.errors import UserError, run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack", help="data folder -> .npz")
    pack.add_argument("data_folder", type=Path)
    pack.add_argument("npz", type=Path)
    pack.add_argument("--limit", type=int, default=None, help="first N train and test images")
    unpack = sub.add_parser("unpack", help=".npz -> new data folder")
    unpack.add_argument("npz", type=Path)
    unpack.add_argument("data_folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack" and args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, not {args.limit}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from tgssalt.datapack import pack, unpack

    if args.command == "pack":
        counts = pack(args.data_folder, args.npz, args.limit)
        mib = counts["bytes"] / 2**20
        print(
            f"packed {counts['train']} train and {counts['test']} test images: {args.npz} "
            f"({mib:.1f} MiB)"
        )
    else:
        counts = unpack(args.npz, args.data_folder)
        print(
            f"unpacked {counts['train']} train and {counts['test']} test images into "
            f"{args.data_folder}"
        )


if __name__ == "__main__":
    run_cli(main)
