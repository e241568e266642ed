#!/usr/bin/env bash
# Distributed testing: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# (NNODES, NODE_RANK, MASTER_ADDR, PORT as in mmdet; CPU-only machines use gloo.)
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
exec "$(dirname "$0")/dist_launch.sh" "$(dirname "$0")/test.py" "$GPUS" "$CONFIG" "$CHECKPOINT" "${@:4}"
