#!/usr/bin/env bash
# Testing on a Slurm cluster: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [args]
exec "$(dirname "$0")/slurm_launch.sh" "$1" "$2" "$(dirname "$0")/test.py" "$3" "$4" "${@:5}"
