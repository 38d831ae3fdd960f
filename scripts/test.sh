#!/usr/bin/env bash
# Runs the test suite (CPU): bootstraps the pinned environment first.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k architectures`.
# Test files run in parallel, one per core (pytest-xdist; a file's tests stay in
# one process, so module fixtures such as a trained model are built once);
# SBD_TEST_WORKERS=0 runs them in this process.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export CUDA_VISIBLE_DEVICES="" TF_CPP_MIN_LOG_LEVEL=2
WORKERS="${SBD_TEST_WORKERS:-auto}"
if [ "$WORKERS" = "0" ]; then
  exec "$VENV/bin/python" -m pytest "$@"
fi
exec "$VENV/bin/python" -m pytest -n "$WORKERS" --dist loadfile "$@"
