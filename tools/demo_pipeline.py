#!/usr/bin/env python
"""``make demo``: img2pose end to end on the embedded synthetic dataset, on a CPU.

1. render the synthetic 6DoF face dataset and convert it to LMDB
   (``tools/dataset_converters/make_synthetic_faces.py``);
2. train ``configs/img2pose_r18_demo.py`` (or ``--config``, e.g. the one-stage
   ``configs/retina_img2pose_r18_demo.py``) with ``tools/train.py``;
3. test the checkpoint with ``tools/test.py`` (face AP and head-pose errors) and
   draw the predictions (``--show-dir``);
4. compare with trivial baselines and print/save a results table
   (``<work-dir>/results.json`` and ``results.md``).

Every step reuses what a previous (interrupted) run finished: the generator resumes,
training resumes from the last checkpoint, a finished checkpoint is not retrained.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from img2pose_mm.apis.model_config import pose_coder_cfgs  # noqa: E402
from img2pose_mm.structures import pose_to_euler  # noqa: E402


def log(msg: str) -> None:
    print(f'[demo] {msg}', flush=True)


def run(cmd: List[str], step: str) -> None:
    start = time.time()
    log(f'{step}: {" ".join(cmd)}')
    env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}')
    proc = subprocess.run(cmd, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise SystemExit(f'[demo] step "{step}" failed with exit code {proc.returncode}')
    log(f'{step} done in {time.time() - start:.0f}s')


def read_json_lines(path: Path) -> List[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mean_pose_baseline(data_dir: Path) -> Dict[str, float]:
    """Yaw/pitch/roll MAE of always predicting the training set's mean pose."""
    train = read_json_lines(data_dir / 'train.json')
    val = read_json_lines(data_dir / 'val.json')
    train_poses = torch.tensor([p for rec in train for p in rec['poses']], dtype=torch.float64)
    val_poses = torch.tensor([p for rec in val for p in rec['poses']], dtype=torch.float64)
    mean_euler = pose_to_euler(train_poses).mean(0)
    err = (pose_to_euler(val_poses) - mean_euler).abs()
    err = torch.minimum(err, 360 - err)
    pitch, yaw, roll = err.mean(0).tolist()
    return dict(yaw=yaw, pitch=pitch, roll=roll, mae=(yaw + pitch + roll) / 3)


def latest_metrics(test_dir: Path) -> Dict[str, float]:
    """The metrics mmengine wrote for the newest test run in ``test_dir``."""
    candidates = sorted(glob.glob(str(test_dir / '*' / '*.json')), key=os.path.getmtime)
    for path in reversed(candidates):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if any(k.startswith('face/') or k.startswith('pose/') for k in record):
                    return record
    raise SystemExit(f'[demo] no test metrics found under {test_dir}')


def contact_sheet(vis_dir: Path, out_path: Path, max_images: int = 8) -> bool:
    import cv2
    files = sorted(glob.glob(str(vis_dir / '**' / '*.jpg'), recursive=True) +
                   glob.glob(str(vis_dir / '**' / '*.png'), recursive=True))[:max_images]
    if not files:
        return False
    tiles = []
    for path in files:
        img = cv2.imread(path)
        scale = 320 / img.shape[0]
        tiles.append(cv2.resize(img, (int(img.shape[1] * scale), 320)))
    rows = [np.concatenate(tiles[i:i + 4], 1) for i in range(0, len(tiles), 4)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    cv2.imwrite(str(out_path), np.concatenate(rows, 0))
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-dir', default='data/synthetic')
    parser.add_argument('--config', default='configs/img2pose_r18_demo.py')
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='forwarded to tools/train.py and tools/test.py')
    args = parser.parse_args()

    start = time.time()
    py = sys.executable
    work = (REPO / args.work_dir).resolve()
    data = (REPO / args.data_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    from mmengine.config import Config, DictAction
    config = Config.fromfile(str(REPO / args.config))
    # the user's --cfg-options as train.py will see them (e.g. train_cfg.max_epochs names
    # the checkpoint to test)
    options = argparse.ArgumentParser()
    options.add_argument('--cfg-options', nargs='*', action=DictAction, default={})
    config.merge_from_dict(options.parse_args(['--cfg-options', *args.cfg_options]).cfg_options)
    data_opts = [f'data_root={data}/', f'train_dataloader.dataset.data_root={data}/',
                 f'val_dataloader.dataset.data_root={data}/',
                 f'test_dataloader.dataset.data_root={data}/']
    for path, _ in pose_coder_cfgs(config.model):   # two-stage, cascade or one-stage heads
        data_opts += [f'{path}.pose_mean={data}/train_pose_mean.npy',
                      f'{path}.pose_stddev={data}/train_pose_stddev.npy']
    cfg_opts = data_opts + list(args.cfg_options)

    # 1. data
    run([py, 'tools/dataset_converters/make_synthetic_faces.py', '--out-dir', str(data),
         '--num-train', str(args.num_train), '--num-val', str(args.num_val),
         '--img-size', str(args.img_size), '--seed', str(args.seed)], 'synthetic dataset')

    # 2. training (resumes an interrupted run; a finished one is reused)
    train_dir = work / 'train'
    final = sorted(glob.glob(str(train_dir / 'epoch_*.pth')), key=os.path.getmtime)
    max_epochs = config.train_cfg.max_epochs
    done = train_dir / f'epoch_{max_epochs}.pth'
    if not done.exists():
        resume = ['--resume'] if final else []
        run([py, 'tools/train.py', args.config, '--work-dir', str(train_dir), *resume,
             '--cfg-options', *cfg_opts], 'training')
    else:
        log(f'training already finished: {done}')

    # 3. test + pictures
    test_dir = work / 'test'
    run([py, 'tools/test.py', args.config, str(done), '--work-dir', str(test_dir),
         '--out', str(test_dir / 'predictions.pkl'), '--show-dir', 'vis',
         '--cfg-options', *cfg_opts, 'default_hooks.visualization.test_out_dir=vis',
         'default_hooks.visualization.score_thr=0.5'],   # the picture; AP uses all
        'testing')
    metrics = latest_metrics(test_dir)
    vis_dirs = sorted(glob.glob(str(test_dir / '*' / 'vis')), key=os.path.getmtime)
    sheet = work / 'predictions.jpg'
    has_sheet = bool(vis_dirs) and contact_sheet(Path(vis_dirs[-1]), sheet)

    # 4. baselines and the table
    baseline = mean_pose_baseline(data)
    ap = metrics.get('face/all', metrics.get('face/AP', float('nan')))
    mae = metrics['pose/mae']
    rows = [
        ('face AP (IoU 0.5, WIDER protocol)', f'{ap:.3f}', '0.5', 'pass' if ap >= 0.5 else 'FAIL'),
        ('pose MAE, mean of yaw/pitch/roll (deg)', f'{mae:.2f}',
         f'< {baseline["mae"] / 2:.2f} (half of mean-pose {baseline["mae"]:.2f})',
         'pass' if mae < baseline['mae'] / 2 else 'FAIL'),
        ('  yaw / pitch / roll (deg)',
         f'{metrics["pose/yaw"]:.2f} / {metrics["pose/pitch"]:.2f} / {metrics["pose/roll"]:.2f}',
         f'mean pose: {baseline["yaw"]:.2f} / {baseline["pitch"]:.2f} / {baseline["roll"]:.2f}', ''),
        ('share of faces the pose metric found no detection for',
         f'{metrics.get("pose/miss_rate") or 0.0:.1%}', '', ''),
    ]
    elapsed = time.time() - start
    table = ['| metric | img2pose_mm demo | baseline / target | |', '|---|---|---|---|']
    table += [f'| {a} | {b} | {c} | {d} |' for a, b, c, d in rows]
    md = '\n'.join([f'# img2pose_mm demo ({args.config})', '', *table, '',
                    f'Data: {args.num_train} train / {args.num_val} val synthetic images '
                    f'({args.img_size} px). Wall time: {elapsed / 60:.1f} min.',
                    f'Predictions: {sheet.name}' if has_sheet else ''])
    (work / 'results.md').write_text(md + '\n')
    with open(work / 'results.json', 'w') as f:
        json.dump(dict(metrics=metrics, mean_pose_baseline=baseline, ap=ap, mae=mae,
                       passed=bool(ap >= 0.5 and mae < baseline['mae'] / 2),
                       minutes=elapsed / 60, config=args.config), f, indent=2)
    print('\n' + md)
    log(f'results: {work / "results.md"}, {work / "results.json"}'
        + (f', pictures: {sheet}' if has_sheet else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
