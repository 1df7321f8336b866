"""One error type for problems with the user's input, and the CLI wrapper that reports it.

Scripts raise `UserError` for anything the user can fix (a bad key, a missing file, a bad image);
`run_cli` prints it as a single `error: ...` line and exits with status 2, without a traceback.
"""

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line."""


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Run a script's `main`, turning `UserError` (and Ctrl-C) into one line and exit 2."""
    try:
        main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line, for a `UserError` (library messages can run over many
    lines); its type's name when it has no message."""
    lines = str(exc).strip().splitlines()
    return (lines[0][:limit] if lines else "") or type(exc).__name__
