#!/usr/bin/env bash
# The main job: a small real study on CPU (Spatial Broadcast vs deconv VAE on colored
# sprites, 2 seeds each), then its report with tables and figures. Bootstraps .venv first.
# Re-running resumes: finished runs are skipped. Extra arguments go to `sbd_study run`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}" TF_CPP_MIN_LOG_LEVEL=2
OUT="${SBD_DEMO_OUTPUT:-out/demo}"
"$VENV/bin/sbd_study" run gin_configs/studies/demo.toml --output "$OUT" "$@"
echo "Open $OUT/report.md"
