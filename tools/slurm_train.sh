#!/usr/bin/env bash
# Training on a Slurm cluster: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [args]
exec "$(dirname "$0")/slurm_launch.sh" "$1" "$2" "$(dirname "$0")/train.py" "$3" \
    --work-dir="$4" "${@:5}"
