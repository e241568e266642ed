#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG GPUS [train.py args]
# (NNODES, NODE_RANK, MASTER_ADDR, PORT as in mmdet; CPU-only machines use gloo.)
CONFIG=$1
GPUS=$2
exec "$(dirname "$0")/dist_launch.sh" "$(dirname "$0")/train.py" "$GPUS" "$CONFIG" "${@:3}"
