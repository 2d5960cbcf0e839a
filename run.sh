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

# The tests also need three Debian packages: chromium (the UI journeys drive it through Playwright; no browser is
# downloaded), libatomic1 (Playwright's bundled node needs it; a minimal Debian lacks it) and docker-compose
# (validates docker-compose.yml without a Docker engine). Installed here when missing, as root or through
# passwordless sudo; otherwise the exact command is printed and the tests do not start.
test_system_packages() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    local libraries
    libraries="$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)"
    [[ "$libraries" == *"libatomic.so.1 "* ]] || missing+=(libatomic1)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    [ ${#missing[@]} -eq 0 ] && return
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo)
        else
            echo "The tests need Debian's ${missing[*]}. Install them, then run ./run.sh test again:" >&2
            echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "The tests need ${missing[*]} (/usr/bin/chromium, libatomic.so.1, docker-compose); install them with your package manager." >&2
        exit 1
    fi
    echo "installing ${missing[*]} for the tests (apt-get)" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

command="${1:-demo}"
[ $# -gt 0 ] && shift
case "$command" in
    test) test_system_packages; exec .venv/bin/python -m pytest "$@" ;;
    *) exec .venv/bin/analytics "$command" "$@" ;;
esac
