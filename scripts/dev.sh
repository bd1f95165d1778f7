#!/usr/bin/env bash
# Runs the platform locally: installs storefront-jobs into .venv on first use,
# then `storefront-jobs dev` (embedded Redis unless STOREFRONT_JOBS_BROKER_URL
# is set, a worker pool per priority, a demo workload). Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/storefront-jobs ]; then
    "$PYTHON" -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e .
fi
exec .venv/bin/storefront-jobs dev "$@"
