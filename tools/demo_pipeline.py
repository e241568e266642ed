#!/usr/bin/env python
"""``make demo``: img2pose end to end on the embedded synthetic dataset, on a CPU.

Renders the dataset, trains ``--config``, tests it (and with ``--tta`` where the config has
it) and writes ``<work-dir>/results.{md,json}`` (README.md, "Two commands"). Every step
reuses what a previous (interrupted) run finished.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from img2pose_mm.apis.model_config import pose_coder_cfgs  # noqa: E402
from img2pose_mm.datasets.face_annotations import iter_json_list  # noqa: E402
from img2pose_mm.structures import pose_to_euler  # noqa: E402


def log(msg: str) -> None:
    print(f'[demo] {msg}', flush=True)


ITER_TIME_PATTERN = re.compile(r'\btime: ([0-9.]+)')
#: the testing phase's fixed seconds (start, model, metrics, contact sheet) and the
#: seconds per training iteration assumed before the training's log says
TEST_OVERHEAD_S = 15.0
#: what the demo must reach on the synthetic validation split
TARGET_AP = 0.9
TARGET_MAE = 10.0
DEFAULT_ITER_S = 0.5
ETA_PATTERN = re.compile(r'\beta: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)')


def parse_eta(line: str) -> Optional[float]:
    """Seconds left in an mmengine log line (``eta: 0:12:34`` or ``eta: 1 day, 2:03:04``)."""
    match = ETA_PATTERN.search(line)
    if match is None:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


class Progress:
    """The pipeline's phase and its ETA, printed while a step's log streams by.

    ``later`` holds the estimated seconds of the phases after the running one; the
    running phase's own estimate comes from mmengine's ``eta:`` in its log.
    """

    def __init__(self, phases: List[str], every: float = 60.0) -> None:
        self.phases = phases
        self.every = every
        self.start = time.time()
        self.later = 0.0
        #: maps a step's seconds per iteration (``time:`` in its log) to ``later``
        self.later_from_iter_time: Optional[Callable[[float], float]] = None
        self._last_print = 0.0

    def begin(self, phase: str, later: float) -> None:
        self.phase, self.later = phase, later
        number = self.phases.index(phase) + 1
        log(f'phase {number}/{len(self.phases)}: {phase} '
            f'({(time.time() - self.start) / 60:.1f} min so far)')

    def eta(self, phase_left: float, iter_seconds: Optional[float] = None) -> None:
        if self.later_from_iter_time is not None and iter_seconds is not None:
            self.later = self.later_from_iter_time(iter_seconds)
        now = time.time()
        if now - self._last_print < self.every:
            return
        self._last_print = now
        left = phase_left + self.later
        done_at = time.strftime('%H:%M', time.localtime(now + left))
        number = self.phases.index(self.phase) + 1
        log(f'phase {number}/{len(self.phases)} {self.phase}: pipeline ETA {left / 60:.1f} min '
            f'(done about {done_at}; {(now - self.start) / 60:.1f} min so far)')


def run(cmd: List[str], step: str, progress: Optional[Progress] = None) -> float:
    """Run one step, its output streamed through; returns its wall time in seconds."""
    start = time.time()
    log(f'{step}: {" ".join(cmd)}')
    env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
               PYTHONUNBUFFERED='1')
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        left = parse_eta(line)
        if progress is not None and left is not None:
            match = ITER_TIME_PATTERN.search(line)
            progress.eta(left, float(match.group(1)) if match else None)
    if proc.wait() != 0:
        raise SystemExit(f'[demo] step "{step}" failed with exit code {proc.returncode}')
    elapsed = time.time() - start
    log(f'{step} done in {elapsed:.0f}s')
    return elapsed


def split_poses(data_dir: Path, split: str) -> torch.Tensor:
    """The ground-truth poses ``(N, 6)`` of every face in ``<data_dir>/<split>.json``."""
    records = (json.loads(line) for _, line in iter_json_list(data_dir / f'{split}.json'))
    return torch.tensor([p for rec in records for p in rec['poses']], dtype=torch.float64)


def mean_pose_baseline(data_dir: Path) -> Dict[str, float]:
    """Yaw/pitch/roll MAE of always predicting the training set's mean pose."""
    mean_euler = pose_to_euler(split_poses(data_dir, 'train')).mean(0)
    err = (pose_to_euler(split_poses(data_dir, 'val')) - mean_euler).abs()
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
    parser.add_argument('--num-train', type=int, default=1600)
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

    progress = Progress(['synthetic dataset', 'training', 'testing'])
    batch_size = config.train_dataloader.batch_size

    # views of the config's test-time augmentation, tested after the single pass
    tta_views = 0
    if 'tta_model' in config:
        tta_views = int(np.prod([len(t) for step in config.tta_pipeline
                                 if step['type'] == 'TestTimeAug' for t in step['transforms']]))

    def test_estimate(iter_seconds: float) -> float:
        """The testing phase's seconds, from the training's seconds per iteration: a test
        image costs about what a training image does (forward only, but every proposal
        decoded and the pictures drawn), plus loading; each TTA view as much again."""
        return (TEST_OVERHEAD_S + args.num_val * iter_seconds / batch_size) * (1 + tta_views)

    # 1. data
    progress.begin('synthetic dataset', later=0.0)
    run([py, 'tools/dataset_converters/make_synthetic_faces.py', '--out-dir', str(data),
         '--num-train', str(args.num_train), '--num-val', str(args.num_val),
         '--img-size', str(args.img_size), '--seed', str(args.seed)], 'synthetic dataset')

    # 2. training (resumes an interrupted run; a finished one is reused)
    train_dir = work / 'train'
    max_epochs = config.train_cfg.max_epochs
    done = train_dir / f'epoch_{max_epochs}.pth'
    iterations = max_epochs * -(-args.num_train // batch_size)
    if not done.exists():
        resume = ['--resume'] if glob.glob(str(train_dir / 'epoch_*.pth')) else []
        progress.begin('training', later=test_estimate(DEFAULT_ITER_S))
        progress.later_from_iter_time = test_estimate
        train_s = run([py, 'tools/train.py', args.config, '--work-dir', str(train_dir), *resume,
                       '--cfg-options', *cfg_opts], 'training', progress)
        iter_s = train_s / iterations
    else:
        log(f'training already finished: {done}')
        iter_s = DEFAULT_ITER_S

    # 3. test + pictures
    test_dir = work / 'test'
    progress.begin('testing', later=0.0)
    progress.later_from_iter_time = None
    log(f'testing {args.num_val} images, about {test_estimate(iter_s) / 60:.1f} min')
    run([py, 'tools/test.py', args.config, str(done), '--work-dir', str(test_dir),
         '--out', str(test_dir / 'predictions.pkl'), '--show-dir', 'vis',
         '--cfg-options', *cfg_opts, 'default_hooks.visualization.test_out_dir=vis',
         'default_hooks.visualization.score_thr=0.5'],   # the picture; AP uses all
        'testing', progress)
    columns = {'single pass': latest_metrics(test_dir)}
    vis_dirs = sorted(glob.glob(str(test_dir / '*' / 'vis')), key=os.path.getmtime)
    sheet = work / 'predictions.jpg'
    has_sheet = bool(vis_dirs) and contact_sheet(Path(vis_dirs[-1]), sheet)
    if 'tta_model' in config:       # the config's test-time augmentation (mmdet's --tta)
        tta_dir = work / 'test_tta'
        run([py, 'tools/test.py', args.config, str(done), '--tta', '--work-dir', str(tta_dir),
             '--cfg-options', *cfg_opts], 'testing with test-time augmentation', progress)
        columns['test-time augmentation (--tta)'] = latest_metrics(tta_dir)
    metrics = list(columns.values())[-1]     # the demo's result: the last column

    # 4. baselines and the table
    baseline = mean_pose_baseline(data)
    # mmengine's JSON keeps the float metrics only (its integer counts come back null)
    faces = len(split_poses(data, 'val'))

    def missed(record: dict) -> int:
        rate = record.get('pose/miss_rate')
        return faces if rate is None else round(rate * faces)

    def ap_of(record: dict) -> float:
        return record.get('face/all', record.get('face/AP', float('nan')))

    ap, mae = ap_of(metrics), metrics['pose/mae']
    checks = dict(ap=ap >= TARGET_AP, mae=mae <= TARGET_MAE, missed=missed(metrics) == 0)
    verdict = {k: 'pass' if ok else 'FAIL' for k, ok in checks.items()}
    each = list(columns.values())
    rows = [
        ('face AP (IoU 0.5, WIDER protocol)', [f'{ap_of(m):.3f}' for m in each],
         f'>= {TARGET_AP}', verdict['ap']),
        ('head-pose MAE, mean of yaw / pitch / roll (deg)',
         [f'{m["pose/mae"]:.2f}' for m in each],
         f'<= {TARGET_MAE:g} (mean-pose baseline {baseline["mae"]:.2f})', verdict['mae']),
        ('  yaw / pitch / roll (deg)',
         [f'{m["pose/yaw"]:.2f} / {m["pose/pitch"]:.2f} / {m["pose/roll"]:.2f}' for m in each],
         f'mean pose: {baseline["yaw"]:.2f} / {baseline["pitch"]:.2f} / {baseline["roll"]:.2f}', ''),
        ('  geodesic rotation error (deg)',
         [f'{m.get("pose/geodesic", float("nan")):.2f}' for m in each], '', ''),
        ('faces without a matching detection', [f'{missed(m)} of {faces}' for m in each], '0',
         verdict['missed']),
    ]
    elapsed = time.time() - start
    table = ['| metric | ' + ' | '.join(columns) + ' | baseline / target | |',
             '|---|' + '---|' * len(columns) + '---|---|']
    table += [f'| {name} | ' + ' | '.join(values) + f' | {target} | {result} |'
              for name, values, target, result in rows]
    md = '\n'.join([f'# img2pose_mm demo ({args.config})', '', *table, '',
                    f'Data: {args.num_train} train / {args.num_val} val synthetic images '
                    f'({args.img_size} px). Wall time: {elapsed / 60:.1f} min.',
                    f'Predictions: {sheet.name}' if has_sheet else ''])
    (work / 'results.md').write_text(md + '\n')
    with open(work / 'results.json', 'w') as f:
        json.dump(dict(metrics=metrics, columns=columns, mean_pose_baseline=baseline,
                       ap=ap, mae=mae,
                       passed=all(checks.values()), targets=dict(ap=TARGET_AP, mae=TARGET_MAE, missed=0),
                       minutes=elapsed / 60, config=args.config), f, indent=2)
    print('\n' + md)
    log(f'results: {work / "results.md"}, {work / "results.json"}'
        + (f', pictures: {sheet}' if has_sheet else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
