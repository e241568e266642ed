#!/usr/bin/env bash
# srun launcher shared by slurm_train.sh / slurm_test.sh:
#   tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [script args]
# GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS as in mmdet.
set -x
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PYTHONPATH="$ROOT":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE:-8}" \
    --ntasks="${GPUS:-8}" \
    --ntasks-per-node="${GPUS_PER_NODE:-8}" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    python -u "$SCRIPT" "${@:4}" --launcher=slurm
