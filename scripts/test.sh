#!/usr/bin/env bash
# Runs the test suite (CPU): bootstraps the pinned environment first.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k architectures`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export CUDA_VISIBLE_DEVICES="" TF_CPP_MIN_LOG_LEVEL=2
exec "$VENV/bin/python" -m pytest "$@"
