# Shared by code/demo.sh and code/test.sh (sourced, not run): create the repository's .venv if
# it is absent, upgrade pip and install a requirements file into it.
#
#   source code/venv.sh && ensure_venv requirements.txt   # from the repository root
#
# Sets VENV_PY to the venv's python. Needs Python 3.11 or newer: python3.11 is preferred,
# python3 is the fallback.

MIN_PYTHON="3.11"

die() {
    echo "error: $*" >&2
    exit 1
}

# Print the first of python3.11, python3 that runs; fail clearly when neither is >= 3.11.
find_python() {
    local candidate
    for candidate in python3.11 python3; do
        # `command -v` alone is not enough: a pyenv shim exists even when its version does not.
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "" >/dev/null 2>&1; then
            if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
                echo "$candidate"
                return 0
            fi
            local found
            found=$("$candidate" -c 'import platform; print(platform.python_version())')
            die "$candidate is Python $found; this project needs Python $MIN_PYTHON or newer" \
                "(install python$MIN_PYTHON and run again)"
        fi
    done
    die "no Python found (looked for python3.11 and python3); install Python $MIN_PYTHON or newer"
}

ensure_venv() {
    local requirements=$1 python
    if [ ! -x .venv/bin/python ]; then
        python=$(find_python)
        echo "Creating .venv with $python ($("$python" --version 2>&1))"
        "$python" -m venv .venv \
            || die "could not create .venv (on Debian/Ubuntu: apt install python3.11-venv)"
    fi
    VENV_PY="$PWD/.venv/bin/python"
    "$VENV_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die ".venv's Python is older than $MIN_PYTHON or broken; delete .venv and run again"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    echo "Installing $requirements into .venv (the first time takes a minute or two)"
    # Old pips (23.x) fail to resolve this set; upgrade pip first.
    "$VENV_PY" -m pip install -q --upgrade pip
    # --no-compile: pip would byte-compile every installed module one file at a time (more than
    # half of a fresh install here); Python compiles the modules a run imports when it imports
    # them, and `compile_venv` compiles the rest on all cores where many processes will start.
    "$VENV_PY" -m pip install -q --no-compile -r "$requirements"
}

# Byte-compile the venv's packages on all cores (seconds when they are already compiled): for
# runs that start many Python processes, such as the test suite, each of which would otherwise
# compile what it imports again where PYTHONDONTWRITEBYTECODE is set.
compile_venv() {
    local site
    site=$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$VENV_PY" -m compileall -q -j 0 "$site" >/dev/null \
        || die "could not byte-compile the packages in $site"
}
