#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment with the pinned stack.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run repeatedly: it only
# reinstalls when requirements/*.txt or setup.py changed.
#   SBD_VENV   where the environment lives (default: <repo>/.venv)
#   PYTHON     the Python to use (default: the existing environment's, else python3.11,
#              python3.12, python3.13, python3); its version picks the stack:
#              3.11 -> TensorFlow 2.15 (requirements/lock.txt),
#              3.12 / 3.13 -> TensorFlow 2.21 (requirements/lock-py312.txt)
#   SBD_GPU    1: also install TensorFlow's GPU variant, tensorflow[and-cuda] at the lock's
#              TensorFlow version (NVIDIA's CUDA / cuDNN pip wheels, 1.9-2.8 GB more download;
#              on 3.12 / 3.13 pinned by requirements/gpu-py312.txt; Linux x86_64 only, WSL2
#              included; the machine needs an NVIDIA driver: docs/gpu_time.md).
#              Unset: the environment's earlier choice, else the CPU set-up (the default).
#              Untested on a GPU (none was available where this was written).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SBD_VENV:-$ROOT/.venv}"
# Absolute, so that a relative SBD_VENV (".venv312") means the same after a cd.
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
if [ -z "${PYTHON:-}" ] && [ -x "$VENV/bin/python" ]; then
  PY="$VENV/bin/python"
else
  PY="${PYTHON:-$(command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)}"
fi

PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
case "$PYVER" in
  3.11) LOCK="requirements/lock.txt"; STACK="Python 3.11, TensorFlow 2.15" ;;
  3.12|3.13) LOCK="requirements/lock-py312.txt"; STACK="Python $PYVER, TensorFlow 2.21" ;;
  *)
    echo "sbd_plugin needs Python 3.11, 3.12 or 3.13; $PY is $("$PY" --version 2>&1)." >&2
    echo "Set PYTHON=/path/to/python3.12 (or 3.13, or 3.11) and run again." >&2
    exit 1 ;;
esac
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$PYVER')"; then
  echo "$VENV was made with another Python than $PY ($PYVER); remove it or set SBD_VENV." >&2
  exit 1
fi

# GPU variant: opt-in, remembered by the environment (.sbd_plugin_gpu).
GPU_FILE="$VENV/.sbd_plugin_gpu"
GPU_MODE="${SBD_GPU:-}"
if [ -z "$GPU_MODE" ]; then
  GPU_MODE=0; [ -f "$GPU_FILE" ] && GPU_MODE=1
fi
case "$GPU_MODE" in
  0) if [ -f "$GPU_FILE" ]; then
       echo "$VENV has TensorFlow's GPU wheels (made with SBD_GPU=1); remove it, or set SBD_VENV, for a CPU-only one." >&2
       exit 1
     fi ;;
  1) if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
       echo "SBD_GPU=1: TensorFlow's GPU wheels are for Linux x86_64 (and WSL2) only; this is $(uname -s) $(uname -m)." >&2
       exit 1
     fi ;;
  *) echo "SBD_GPU must be 0 or 1, not '$GPU_MODE'." >&2; exit 1 ;;
esac

STAMP_FILE="$VENV/.sbd_plugin_stamp"
STAMP="$( (echo "$LOCK gpu=$GPU_MODE"; cat "$ROOT/requirements/"*.txt "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/sbd_plugin.pth" \
  "$ROOT/scripts/bootstrap.sh") | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] && [ -x "$VENV/bin/python" ]; then
  return 0 2>/dev/null || exit 0
fi

[ "$GPU_MODE" = 1 ] && STACK="$STACK, GPU"
echo "[bootstrap] setting up $VENV ($STACK, $LOCK; first run downloads ~1 GB)" >&2
# An environment takes 2.6 GB (3.11) to 3.0 GB (3.13); pip's unpacking needs room beside it.
NEED_KB=$((4 * 1024 * 1024))
FREE_KB="$(df -Pk "$(dirname "$VENV")" 2>/dev/null | awk 'NR==2 {print $4}')"
if [ -n "$FREE_KB" ] && [ "$FREE_KB" -lt "$NEED_KB" ]; then
  echo "[bootstrap] $(dirname "$VENV") has $((FREE_KB / 1024)) MB free; setting up $VENV needs about 4 GB." >&2
  echo "Free some space there, or set SBD_VENV to a folder on a disk with room, and run again." >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# A known pip: editable installs must go through PEP 660 (see pyproject.toml).
"${PIP[@]}" install "pip==26.2.1"
"${PIP[@]}" install -r "$ROOT/$LOCK"
if [ "$GPU_MODE" = 1 ]; then
  # The same TensorFlow with its `and-cuda` extra: only NVIDIA's wheels are added; the lock
  # as constraints keeps every locked package where it is (pip fails rather than move one).
  TF_VERSION="$(sed -n 's/^tensorflow==\([^ ]*\).*/\1/p' "$ROOT/$LOCK")"
  [ -n "$TF_VERSION" ] || { echo "[bootstrap] no tensorflow== line in $LOCK" >&2; exit 1; }
  GPU_PINS=(-c "$ROOT/$LOCK")
  [ "$LOCK" = requirements/lock-py312.txt ] && GPU_PINS+=(-c "$ROOT/requirements/gpu-py312.txt")
  echo "[bootstrap] SBD_GPU=1: tensorflow[and-cuda]==$TF_VERSION (NVIDIA's CUDA and cuDNN wheels, 2-3 GB)" >&2
  "${PIP[@]}" install "${GPU_PINS[@]}" "tensorflow[and-cuda]==$TF_VERSION"
  touch "$GPU_FILE"
fi
"${PIP[@]}" install -r "$ROOT/requirements/ray.txt"
# dlib's metadata pins tensorflow==1.14 / tensorflow-probability==0.7, which do not
# exist for Python 3.11+: install it without its dependencies (ours are pinned above).
"${PIP[@]}" install --no-deps "disentanglement-lib==1.5"
# Editable install of the plugin; also installs sbd_plugin.pth (the activation hook).
LOG="$VENV/.sbd_plugin_install.log"
"${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT" >"$LOG" 2>&1 \
  || { cat "$LOG" >&2; exit 1; }
# The hook must activate the plugin on a bare `import disentanglement_lib`.
(cd / && "$VENV/bin/python" -c "import sys, disentanglement_lib; assert 'sbd_plugin.dlib_bridge' in sys.modules") \
  || { echo "[bootstrap] the activation hook sbd_plugin.pth was not installed" >&2; exit 1; }
if [ "$GPU_MODE" = 1 ]; then
  # Informational only: the set-up may run on a machine without a GPU (a login node).
  GPUS="$(cd / && TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" -c \
    "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null || echo "?")"
  echo "[bootstrap] GPUs TensorFlow sees here: $GPUS (0 is expected on a machine without one)" >&2
fi
echo "$STAMP" > "$STAMP_FILE"
