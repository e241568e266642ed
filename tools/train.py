#!/usr/bin/env python
"""Train an img2pose_mm model (mmdet's tools/train.py, with a CPU/gloo fallback)."""
import argparse

import torch
from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from tool_args import add_common_args, load_tool_config, parse_tool_args

import img2pose_mm  # noqa: F401  (registers components, makes --resume loadable)
from img2pose_mm.utils import setup_cpu_distributed, teardown_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Train an img2pose_mm detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training (GPU; on CPU use '
                        "optim_wrapper.type='BF16OptimWrapper')")
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest one in the work dir')
    add_common_args(parser)
    return parse_tool_args(parser)


#: Iterations between log lines when training on a CPU: an r18 iteration takes seconds
#: there, so the GPU recipes' 50 would leave minutes without a sign of life.
CPU_LOG_INTERVAL = 10


def scale_log_interval_for_cpu(cfg) -> None:
    """Log at least every :data:`CPU_LOG_INTERVAL` iterations when no GPU is present."""
    logger = cfg.get('default_hooks', {}).get('logger')
    if torch.cuda.is_available() or not logger or logger.get('interval', 0) <= CPU_LOG_INTERVAL:
        return
    print(f'no GPU: logging every {CPU_LOG_INTERVAL} iterations instead of '
          f'{logger["interval"]} (set default_hooks.logger.interval to override)')
    logger['interval'] = CPU_LOG_INTERVAL


def main():
    args = parse_args()
    setup_cache_size_limit_of_dynamo()
    cfg = load_tool_config(args)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('the config has no "auto_scale_lr.base_batch_size"')

    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume

    scale_log_interval_for_cpu(cfg)
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
