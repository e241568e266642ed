#!/usr/bin/env bash
# torchrun launcher shared by dist_train.sh / dist_test.sh:
#   tools/dist_launch.sh SCRIPT NPROC [script args]
# Uses the repo's .venv when present (override with PYTHON=...). Without CUDA the
# processes run on CPU with the gloo backend (see img2pose_mm.utils.setup_cpu_distributed).
set -e
SCRIPT=$1
NPROC=$2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

PYTHONPATH="$ROOT":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$SCRIPT" "${@:3}" --launcher pytorch
