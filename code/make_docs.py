"""Regenerate the documentation pages that are generated from the code.

Usage: python code/make_docs.py [--check]

Writes the configuration reference in docs/configuration.md (between its marker comments) from
`tgssalt.config.DEFAULTS`, `tgssalt.config_docs` and the registries, and docs/backbones.md from the
model registries. `--check` writes nothing and exits 1, naming the pages, when any is stale.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgssalt.errors import run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: `--check`, and the repository root (for tests)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a page is stale"
    )
    parser.add_argument("--root", type=Path, default=REPO, help=f"repository root (default {REPO})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Check or regenerate the generated pages."""
    args = parse_args(argv)
    from tgssalt import docs  # imports Keras: after the arguments are parsed

    if args.check:
        stale = docs.stale_pages(args.root)
        if stale:
            message = f"error: stale: {', '.join(stale)}: run python code/make_docs.py"
            print(message, file=sys.stderr)
            sys.exit(1)
        print("docs are up to date")
        return
    changed = docs.write_pages(args.root)
    print(f"wrote {', '.join(changed)}" if changed else "docs are up to date")


if __name__ == "__main__":
    run_cli(main)
