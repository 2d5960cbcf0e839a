#!/usr/bin/env bash
# The project's one entry point for a fresh machine: creates .venv/, installs the project when pyproject.toml
# changed, then runs the command.
#   ./run.sh demo          load the samples and materialise every asset (the `analytics demo` command)
#   ./run.sh test [args]   the test suite (pytest)
#   ./run.sh <other>       any other `analytics` sub-command: dev, db, stop
set -euo pipefail
cd "$(dirname "$0")"

pick_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "Python 3.11 or newer is required" >&2
    exit 1
}

if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi

command="${1:-demo}"
[ $# -gt 0 ] && shift
case "$command" in
    test) exec .venv/bin/python -m pytest "$@" ;;
    *) exec .venv/bin/analytics "$command" "$@" ;;
esac
