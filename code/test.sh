#!/usr/bin/env bash
# Command 2: lint, format check and the test suite, in a few minutes on a CPU.
#
#   bash code/test.sh [PYTEST_ARGS...]      e.g. bash code/test.sh -x -k rle
#
# Creates .venv (if absent) and installs requirements-dev.txt, then runs `ruff check`,
# `ruff format --check` and pytest (tests marked `slow` are skipped; add `-m slow` to run them).
# Exits non-zero if any step fails, including when pytest collects no tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=code/venv.sh
source code/venv.sh

ensure_venv requirements-dev.txt
compile_venv

echo "ruff check"
"$VENV_PY" -m ruff check .
echo "ruff format --check"
"$VENV_PY" -m ruff format --check .
echo "pytest"
status=0
"$VENV_PY" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
fi
exit "$status"
