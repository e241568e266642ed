#!/usr/bin/env python
"""Speed and accuracy of fast-inference options on a validation set.

    python tools/analysis_tools/bench_fast_inference.py CONFIG CKPT --out work_dirs/fast.json

The options and how to read the table: docs/benchmarks.md, "Fast-inference options".
"""
from __future__ import annotations

import argparse
import copy
import json
from typing import Dict, List, Optional

import torch
from benchmark import timed_call  # the benchmark's timer (this script's folder)
from mmdet.registry import MODELS
from mmengine.config import Config, DictAction
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

import img2pose_mm  # noqa: F401
from img2pose_mm.utils import compile_backbone as compile_backbone_
from img2pose_mm.utils import enable_bf16_inference


def evaluate(cfg: Config, checkpoint: str, device: torch.device, proposals: Optional[int] = None,
             bf16: bool = False, compile_backbone: bool = False) -> Dict[str, float]:
    """Metrics and model time per image of one option."""
    cfg = copy.deepcopy(cfg)                    # options must not leak into the next run
    if proposals is not None:
        cfg.model.test_cfg.rpn.max_per_img = proposals
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model = model.to(device).eval()
    if compile_backbone:
        compile_backbone_(model)
    if bf16:
        enable_bf16_inference(model)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    seconds, images = 0.0, 0
    with torch.no_grad():
        for i, batch in enumerate(loader):
            outputs, ms = timed_call(lambda batch=batch: model.test_step(batch), device)
            if i > 0:                                   # the first batch warms up
                seconds += ms / 1e3
                images += len(outputs)
            for out in outputs:
                out.pred_instances = out.pred_instances.to('cpu')
            evaluator.process(outputs, batch)
    metrics = evaluator.evaluate(len(loader.dataset))
    metrics['ms_per_image'] = seconds / max(images, 1) * 1e3
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--proposals', type=int, nargs='*', default=[300, 100])
    parser.add_argument('--options', nargs='*',
                        default=['baseline', 'proposals', 'bf16', 'compile', 'fast'])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', help='JSON file for the table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.test_cfg.rpn.max_per_img=1000')
    args = parser.parse_args()

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(f'baseline: {cfg.model.test_cfg.rpn.max_per_img} test proposals', flush=True)
    device = torch.device(args.device)
    runs: List[tuple] = []
    if 'baseline' in args.options:
        runs.append(('baseline', {}))
    if 'proposals' in args.options:
        runs += [(f'proposals_{n}', dict(proposals=n)) for n in args.proposals]
    if 'bf16' in args.options:
        runs.append(('bf16', dict(bf16=True)))
    if 'compile' in args.options:
        runs.append(('compile', dict(compile_backbone=True)))
    if 'fast' in args.options and args.proposals:
        fewest = min(args.proposals)
        runs.append((f'fast (proposals_{fewest} + bf16)', dict(proposals=fewest, bf16=True)))

    results: Dict[str, dict] = {}
    for name, kwargs in runs:
        try:
            results[name] = evaluate(cfg, args.checkpoint, device, **kwargs)
        except Exception as exc:  # an option that does not work here is reported, not fatal
            results[name] = dict(error=f'{type(exc).__name__}: {str(exc).splitlines()[0][:200]}')
        print(f'{name}: {results[name]}', flush=True)

    base = results.get('baseline', {})
    keys = [k for k in base if k != 'ms_per_image' and isinstance(base[k], float)]
    lines = ['| option | ms / image | speed-up | ' + ' | '.join(keys) + ' |',
             '|---' * (3 + len(keys)) + '|']
    for name, res in results.items():
        if 'error' in res:
            lines.append(f'| {name} | not available: {res["error"]} |' + ' |' * (1 + len(keys)))
            continue
        speed = base.get('ms_per_image', float('nan')) / res['ms_per_image']
        cells = [f'{res[k]:.3f} ({res[k] - base[k]:+.3f})' if name != 'baseline'
                 else f'{res[k]:.3f}' for k in keys]
        lines.append(f'| {name} | {res["ms_per_image"]:.0f} | {speed:.2f}x | '
                     + ' | '.join(cells) + ' |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(device=str(device), threads=torch.get_num_threads(),
                           baseline_proposals=cfg.model.test_cfg.rpn.max_per_img,
                           results=results, table=table), f, indent=2)


if __name__ == '__main__':
    main()
