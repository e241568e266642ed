#!/usr/bin/env python
"""Browse a dataset after its pipeline: GT boxes, rendered face meshes and pose axes.

Like mmdet's ``tools/analysis_tools/browse_dataset.py``, with
:class:`img2pose_mm.visualization.PoseLocalVisualizer` (a config's plain
``DetLocalVisualizer`` is upgraded to it, keeping its arguments)::

    python tools/analysis_tools/browse_dataset.py configs/img2pose_r18.py --output-dir vis --not-show
"""
from __future__ import annotations

import argparse
import os.path as osp
from typing import Iterable, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

import img2pose_mm  # noqa: F401  (registers the components)
from img2pose_mm.visualization import PoseLocalVisualizer


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Browse a dataset with its GT poses')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=('train', 'val', 'test'), default='train',
                        help='which dataloader\'s dataset to browse')
    parser.add_argument('--output-dir', default=None, help='write the drawn images here')
    parser.add_argument('--not-show', default=False, action='store_true',
                        help='do not open a window')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds between images when showing')
    parser.add_argument('--max-images', type=int, default=-1,
                        help='stop after this many images (-1: all)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def build_visualizer(cfg: Config) -> PoseLocalVisualizer:
    """The config's visualiser as a :class:`PoseLocalVisualizer`."""
    from mmdet.registry import VISUALIZERS
    vis_cfg = dict(cfg.get('visualizer', None) or dict(type='PoseLocalVisualizer'))
    if vis_cfg.get('type') in ('DetLocalVisualizer', 'mmdet.DetLocalVisualizer', None):
        vis_cfg['type'] = 'PoseLocalVisualizer'
    vis_cfg.setdefault('name', 'browse_dataset')
    visualizer = VISUALIZERS.build(vis_cfg)
    if not isinstance(visualizer, PoseLocalVisualizer):
        raise TypeError(f'{vis_cfg["type"]} is not a PoseLocalVisualizer: set '
                        "visualizer=dict(type='PoseLocalVisualizer') in the config")
    return visualizer


def browse(items: Iterable[dict], visualizer: PoseLocalVisualizer,
           output_dir: Optional[str] = None, show: bool = False, show_interval: float = 2,
           max_images: int = -1, total: Optional[int] = None) -> int:
    """Draw pipeline outputs (``inputs`` CHW BGR tensor + ``data_samples``); returns the count.

    Images go to ``output_dir/<basename of img_path>`` (``<index>.png`` without a path).
    """
    if total is not None and max_images >= 0:
        total = min(total, max_images)
    bar = ProgressBar(total) if total else None
    count = 0
    for index, item in enumerate(items):
        if 0 <= max_images <= count:
            break
        inputs = item['inputs']
        img = inputs.permute(1, 2, 0).numpy() if isinstance(inputs, torch.Tensor) else inputs
        img = np.ascontiguousarray(img[..., ::-1])   # BGR (mmdet pipelines) -> RGB
        data_sample = item['data_samples'].cpu()
        gt = data_sample.get('gt_instances', None)
        if gt is not None and 'bboxes' in gt and hasattr(gt.bboxes, 'tensor'):
            gt.bboxes = gt.bboxes.tensor   # HorizontalBoxes -> tensor for the visualiser
        img_path = data_sample.metainfo.get('img_path') or f'{index:06d}.png'
        name = osp.basename(img_path)
        out_file = osp.join(output_dir, name) if output_dir is not None else None
        visualizer.add_datasample(name, img, data_sample, draw_pred=False, show=show,
                                  wait_time=show_interval, out_file=out_file)
        count += 1
        if bar is not None:
            bar.update()
    return count


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader_cfg = cfg.get(f'{args.split}_dataloader', None)
    if not loader_cfg or 'dataset' not in loader_cfg:
        raise KeyError(f'{args.config}: no {args.split}_dataloader.dataset to browse')
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(loader_cfg['dataset'])
    visualizer = build_visualizer(cfg)
    visualizer.dataset_meta = dataset.metainfo
    items = (dataset[i] for i in range(len(dataset)))
    count = browse(items, visualizer, args.output_dir, show=not args.not_show,
                   show_interval=args.show_interval, max_images=args.max_images,
                   total=len(dataset))
    print(f'\n{count} images drawn' + (f' into {args.output_dir}' if args.output_dir else ''))


if __name__ == '__main__':
    main()
