#!/usr/bin/env python
"""A self-check of img2pose_mm on a device: which code runs, does it train, and does it
detect what the CPU detects. Prints a pass/fail table; exits 1 when a check fails.

    python tools/analysis_tools/gpu_check.py --device cuda    # or --device cpu [--quick]

The checks: docs/device_paths.md, "The GPU self-check".
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Tuple

import torch

REPO = Path(__file__).resolve().parents[2]
TWO_STAGE = REPO / 'configs' / 'img2pose_r18.py'
ONE_STAGE = REPO / 'configs' / 'retina_img2pose_r18_fpn.py'
#: the gated parts of the default two-stage config (docs/device_paths.md)
GATED = ('ChannelsLastDataPreprocessor', 'FoldedBNResNet', 'FoldedFPN', 'Img2PoseRPNHead',
         'GatherRoIExtractor')
#: ``--cfg-options`` that turn every speed branch off (= configs/img2pose_r18_stock.py)
STOCK_OPTIONS = {f'model.{part}.fast_devices': [] for part in (
    'data_preprocessor', 'backbone', 'neck', 'rpn_head', 'roi_head.bbox_roi_extractor')}

if str(REPO) not in sys.path:                      # tools.*, from a script run
    sys.path.insert(0, str(REPO))


class Context:
    """What the checks share: the device, the sizes, a scratch folder, lazy fixtures."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.scratch = scratch
        self.quick = args.quick
        self._tiny_config: Optional[Path] = None

    @property
    def on_cpu(self) -> bool:
        return self.device.type == 'cpu'

    @property
    def bench(self):
        from tools.analysis_tools import benchmark
        return benchmark

    def model(self, path: Path, num_proposals: int = 100):
        """The config's model on the device with random weights and pose statistics, every
        proposal decoded (score threshold 0)."""
        options = SimpleNamespace(checkpoint=None, num_proposals=num_proposals, score_thr=0.0,
                                  cfg_options=None)
        cfg = self.bench.load_bench_config(str(path), options)
        torch.manual_seed(0)
        return self.bench.build_model(cfg, None, self.device)

    def batch(self, num: int, h: int = 128, w: int = 160) -> dict:
        """``num`` random images with three faces each (a ``test_step``/``train_step`` batch)."""
        return self.bench.face_batch(num, h, w, seed=num)

    def subprocess_env(self) -> dict:
        env = dict(os.environ, PYTHON=sys.executable)
        env['PYTHONPATH'] = os.pathsep.join(p for p in (str(REPO), env.get('PYTHONPATH')) if p)
        if self.on_cpu:
            env['CUDA_VISIBLE_DEVICES'] = ''        # the tools then run on the CPU (gloo)
        return env

    def tiny_config(self) -> Path:
        """img2pose_r18.py on a tiny synthetic LMDB (made once; the tools' tests' setup)."""
        if self._tiny_config is None:
            from tools.analysis_tools.tiny_config import make_tiny_data, write_tiny_config
            data = make_tiny_data(self.scratch / 'tiny_data', 4 if self.quick else 8, 2)
            self._tiny_config = write_tiny_config(
                data, self.scratch / 'tiny_img2pose_r18.py', base=TWO_STAGE)
        return self._tiny_config


Result = Tuple[str, str]       # (PASS | FAIL | SKIP, detail)


def _paths_detail(taken: Dict[str, set]) -> str:
    by_branch: Dict[str, List[str]] = {}
    for part, branches in sorted(taken.items()):
        by_branch.setdefault('+'.join(sorted(branches)), []).append(part)
    return '; '.join(f'{branch}: {", ".join(parts)}' for branch, parts in by_branch.items()) \
        or 'no gated part (mmdet parts only)'


def check_paths(ctx: Context, path: Path, gated: Tuple[str, ...]) -> Result:
    """The branches the config's parts take in a test step and a training step."""
    from img2pose_mm.utils import record_paths
    model = ctx.model(path)
    with record_paths() as taken:
        model.eval()
        with torch.no_grad():
            model.test_step(ctx.batch(1))
        model.train()
        batch = model.data_preprocessor(ctx.batch(2), True)
        loss, _ = model.parse_losses(model(**batch, mode='loss'))
        loss.backward()
    want = 'fast' if ctx.on_cpu else 'stock'
    wrong = {part: branches for part, branches in taken.items()
             if branches != {want} and (part in gated or 'fast' in branches)}
    missing = [part for part in gated if part not in taken]
    if wrong or missing:
        return 'FAIL', f'expected {want} everywhere; got {_paths_detail(taken)}' + (
            f'; never asked: {", ".join(missing)}' if missing else '')
    return 'PASS', _paths_detail(taken)


def _losses_in(output: str) -> List[float]:
    """The total loss of every logged training iteration."""
    return [float(m.group(1)) for line in output.splitlines() if 'Epoch(train)' in line
            for m in [re.search(r' loss: (-?[0-9.]+(?:e[-+]?\d+)?|nan|inf)', line)] if m]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd: List[str], env: dict, timeout: int) -> Tuple[int, str]:
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def _train_result(code: int, output: str, work: Path) -> Result:
    losses = _losses_in(output)
    if code != 0:
        return 'FAIL', f'exit status {code}: ' + output.strip().splitlines()[-1][-200:]
    if not losses or not all(math.isfinite(v) for v in losses):
        return 'FAIL', f'losses {losses}'
    if not (work / 'epoch_1.pth').is_file():
        return 'FAIL', 'no checkpoint epoch_1.pth'
    return 'PASS', f'{len(losses)} iterations logged, loss {losses[0]:.3f} -> {losses[-1]:.3f}'


def check_train(ctx: Context) -> Result:
    """tools/train.py in one process."""
    work = ctx.scratch / 'train'
    code, output = _run([sys.executable, 'tools/train.py', str(ctx.tiny_config()),
                         '--work-dir', str(work)], ctx.subprocess_env(), ctx.args.timeout)
    return _train_result(code, output, work)


def check_train_dist(ctx: Context) -> Result:
    """tools/dist_train.sh with two or more processes."""
    if ctx.on_cpu:
        procs = 2
    else:
        available = torch.cuda.device_count()
        procs = min(ctx.args.gpus or available, available)
        if procs < 2:
            return 'SKIP', f'{available} GPU(s): dist_train.sh needs two or more'
    work = ctx.scratch / 'train_dist'
    env = dict(ctx.subprocess_env(), PORT=str(_free_port()))
    code, output = _run(['bash', 'tools/dist_train.sh', str(ctx.tiny_config()), str(procs),
                         '--work-dir', str(work)], env, ctx.args.timeout)
    status, detail = _train_result(code, output, work)
    backend = 'gloo' if ctx.on_cpu else 'nccl'
    return status, f'{procs} processes ({backend}); {detail}'


def check_amp(ctx: Context, dtype: torch.dtype) -> Result:
    """Training steps of the default two-stage model under autocast."""
    from mmengine.optim import build_optim_wrapper
    if not ctx.on_cpu and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return 'SKIP', 'this GPU has no bfloat16'
    model = ctx.model(TWO_STAGE)
    model.train()
    optimizer = dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4)
    clip = dict(max_norm=10, norm_type=2)
    steps = 2 if ctx.quick else 3
    losses: List[float] = []
    if not ctx.on_cpu:                       # what tools/train.py --amp builds
        wrapper = build_optim_wrapper(model, dict(
            type='AmpOptimWrapper', loss_scale='dynamic', optimizer=optimizer, clip_grad=clip,
            dtype='float16' if dtype == torch.float16 else 'bfloat16'))
        for _ in range(steps):
            losses.append(float(model.train_step(ctx.batch(2), wrapper)['loss']))
    elif dtype == torch.bfloat16:            # the CPU's bfloat16 recipe (native or not)
        wrapper = build_optim_wrapper(model, dict(type='BF16OptimWrapper', native_only=False,
                                                  optimizer=optimizer, clip_grad=clip))
        for _ in range(steps):
            losses.append(float(model.train_step(ctx.batch(2), wrapper)['loss']))
    else:                                    # AmpOptimWrapper's steps, on the CPU
        # float16 is emulated on most CPUs (tens of times slower): one small step
        steps, size = 1, (64, 96)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)
        scaler = torch.amp.GradScaler('cpu')
        for _ in range(steps):
            with torch.autocast('cpu', dtype=torch.float16):
                batch = model.data_preprocessor(ctx.batch(2, *size), True)
                loss, _ = model.parse_losses(model(**batch, mode='loss'))
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, **clip)
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
    weights_finite = all(torch.isfinite(p).all() for p in model.parameters())
    if not all(math.isfinite(v) for v in losses) or not weights_finite:
        return 'FAIL', f'losses {losses}, finite weights: {weights_finite}'
    return 'PASS', f'{steps} step(s), loss ' + ' -> '.join(f'{v:.3f}' for v in losses)


@contextlib.contextmanager
def no_tf32():
    """Full float32 matrix products and convolutions on CUDA (TF32 off) inside."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def check_fidelity(ctx: Context) -> Result:
    """A converted checkpoint's detections on the device against the CPU's."""
    from img2pose_mm.apis import Img2Pose
    from img2pose_mm.deployment.frame_rate import face_arrays
    from tools.fidelity import native_size_pipeline, sample_photos
    from tools.fidelity.compare import match_detections
    from tools.fidelity.inputs import seeded_converted
    folder = ctx.scratch / 'fidelity'
    folder.mkdir(exist_ok=True)
    ckpt, _ = seeded_converted(folder, 0)
    options = {'test_dataloader.dataset.pipeline': native_size_pipeline(),
               'model.test_cfg.rpn.max_per_img': 300 if ctx.quick else 1000}
    photos = sample_photos(['astronaut'] if ctx.quick else ['astronaut', 'coffee'])
    if ctx.quick:
        photos = [(name, image[128:384, 128:384]) for name, image in photos]
    reference = Img2Pose(checkpoint=ckpt, device='cpu', score_threshold=0.05,
                         cfg_options=options)
    device_options = dict(options, **STOCK_OPTIONS) if ctx.on_cpu else options
    ours = Img2Pose(checkpoint=ckpt, device=str(ctx.device), score_threshold=0.05,
                    cfg_options=device_options)
    details, ok = [], True
    with no_tf32():
        for name, image in photos:
            match = match_detections(*(face_arrays(detector.detect_faces(image))
                                       for detector in (reference, ours)))
            ok &= match['num_ref'] > 0 and match['share_within'] >= 0.99
            details.append(f'{name} {match["num_within"]}/{match["num_ref"]} '
                           f'(device: {match["num_ours"]})')
    versus = 'CPU stock vs CPU default' if ctx.on_cpu else f'{ctx.device} vs CPU'
    return ('PASS' if ok else 'FAIL'), f'{versus}, within tolerance: ' + ', '.join(details)


def check_inference(ctx: Context) -> Result:
    """Two-stage test-step latency and peak memory."""
    h, w, proposals = (320, 480, 300) if ctx.quick else (640, 960, 1000)
    if ctx.on_cpu:
        warmup, repeats = (0, 1) if ctx.quick else (1, 2)
    else:
        warmup, repeats = 3, 10
        torch.cuda.reset_peak_memory_stats(ctx.device)
    res = ctx.bench.bench_inference(ctx.model(TWO_STAGE, proposals), h, w, ctx.device,
                                    SimpleNamespace(warmup=warmup, repeats=repeats))
    ms, memory = res['end_to_end'], res['peak_memory_mb']
    detail = (f'{h}x{w}, {res["num_proposals"]} proposals: {ms:.1f} ms end to end '
              f'(median of {repeats}), peak memory {memory:.0f} MB'
              + (' (process RSS)' if ctx.on_cpu else ''))
    return ('PASS' if math.isfinite(ms) and ms > 0 else 'FAIL'), detail


CHECKS: Dict[str, Callable[[Context], Result]] = {
    'paths two-stage': lambda ctx: check_paths(ctx, TWO_STAGE, GATED),
    'paths one-stage': lambda ctx: check_paths(ctx, ONE_STAGE, ()),
    'train': check_train,
    'train dist': check_train_dist,
    'amp fp16': lambda ctx: check_amp(ctx, torch.float16),
    'amp bf16': lambda ctx: check_amp(ctx, torch.bfloat16),
    'fidelity': check_fidelity,
    'inference': check_inference,
}


def environment(device: torch.device) -> str:
    text = f'torch {torch.__version__}'
    if device.type == 'cuda':
        text += (f', CUDA {torch.version.cuda}, {torch.cuda.get_device_name(device)}, '
                 f'{torch.cuda.device_count()} GPU(s)')
    else:
        text += f', {torch.get_num_threads()} CPU threads'
    return text


def print_table(rows: List[dict]) -> None:
    width = max(len(r['check']) for r in rows)
    print(f'{"check":{width}s}  result  seconds  detail')
    print(f'{"-" * width}  ------  -------  ------')
    for r in rows:
        print(f'{r["check"]:{width}s}  {r["result"]:6s}  {r["seconds"]:7.1f}  {r["detail"]}')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda', help="'cuda' (default), 'cuda:1' or 'cpu'")
    parser.add_argument('--checks', nargs='+', choices=CHECKS, metavar='CHECK',
                        help=f'run only these ({", ".join(CHECKS)}); quote names with spaces')
    parser.add_argument('--quick', action='store_true',
                        help='smaller sizes (the test suite runs --device cpu --quick)')
    parser.add_argument('--gpus', type=int, default=2,
                        help='processes of the dist_train.sh check (0: every GPU)')
    parser.add_argument('--timeout', type=int, default=1200,
                        help='seconds each training subprocess may take')
    parser.add_argument('--work-dir', help='keep the scratch files here (default: a '
                        'temporary folder, deleted)')
    parser.add_argument('--out', help='write the rows as JSON')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('gpu_check: CUDA is not available here (run with --device cpu to check the CPU)',
              file=sys.stderr)
        return 2
    from mmengine.registry import init_default_scope

    import img2pose_mm  # noqa: F401  (registers the components)
    init_default_scope('mmdet')
    if device.type == 'cuda' and device.index is not None:
        torch.cuda.set_device(device)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.work_dir:
            scratch = Path(args.work_dir)
            scratch.mkdir(parents=True, exist_ok=True)
        else:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='gpu_check_')))
        ctx = Context(args, scratch)
        rows = []
        for name in args.checks or CHECKS:
            began = time.perf_counter()
            try:
                result, detail = CHECKS[name](ctx)
            except Exception as error:      # a check that crashes fails; the others still run
                traceback.print_exc()
                result, detail = 'FAIL', f'{type(error).__name__}: {error}'.splitlines()[0][:300]
            rows.append(dict(check=name, result=result, seconds=time.perf_counter() - began,
                             detail=detail))
            print(f'[gpu_check] {name}: {result}', file=sys.stderr, flush=True)
    print(f'img2pose_mm self-check on {device} ({environment(device)})')
    print_table(rows)
    failed = [r['check'] for r in rows if r['result'] == 'FAIL']
    total = time.perf_counter() - start
    print(f'{"FAILED: " + ", ".join(failed) if failed else "all passed"} '
          f'({sum(r["result"] == "SKIP" for r in rows)} skipped) in {total:.0f} s')
    if args.out:
        Path(args.out).write_text(json.dumps(dict(device=str(device), environment=environment(
            device), rows=rows, seconds=total), indent=2))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
