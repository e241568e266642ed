#!/usr/bin/env python
"""Test (and evaluate) an img2pose_mm model (mmdet's tools/test.py, CPU/gloo fallback).

``--out`` predictions carry the poses (``pred_instances.poses``); ``--bf16`` leaves decoding
and NMS in float32 (its speed, and the ``fast`` setting: docs/benchmarks.md).
"""
import argparse
import warnings
from copy import deepcopy

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.registry import RUNNERS
from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine import ConfigDict
from mmengine.runner import Runner
from tool_args import add_common_args, load_tool_config, parse_tool_args

import img2pose_mm  # noqa: F401  (registers components)
from img2pose_mm.utils import enable_bf16_inference, setup_cpu_distributed, teardown_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) an img2pose_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', type=str,
                        help='dump predictions (boxes, scores, poses) to a pickle file')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images will be saved '
                        '(inside work_dir/timestamp)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--bf16', action='store_true',
                        help='bfloat16 backbone/FPN/MLPs (CPU or GPU; see docs/benchmarks.md)')
    add_common_args(parser)
    return parse_tool_args(parser)


#: Hooks of the recipes that need a train loop: tools/test.py leaves them out.
TRAINING_ONLY_HOOKS = ('EarlyStoppingHook',)


def main():
    args = parse_args()
    setup_cache_size_limit_of_dynamo()
    cfg = load_tool_config(args)
    cfg.load_from = args.checkpoint
    # hooks that only make sense while training (they look for a train loop)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) or []
                        if str(h.get('type', '')).split('.')[-1] not in TRAINING_ONLY_HOOKS]

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise RuntimeError('--tta needs "tta_model" and "tta_pipeline" in the config, '
                               'e.g. configs/img2pose_r18_wider_tta.py')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        test_data_cfg.pipeline = deepcopy(cfg.tta_pipeline)

    setup_cpu_distributed(cfg, args.launcher)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)

    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))

    if args.bf16:
        detector = runner.model
        while not hasattr(detector, 'roi_head') and hasattr(detector, 'module'):
            detector = detector.module   # DDP and/or the TTA wrapper
        enable_bf16_inference(detector)
        runner.logger.info('bf16 inference: backbone, FPN and the heads\' layers (RoI MLPs '
                           'or dense head) in bfloat16')

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        runner.test()
    teardown_distributed()


if __name__ == '__main__':
    main()
