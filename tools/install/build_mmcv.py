#!/usr/bin/env python
"""Build (once) and install mmcv with its compiled ops against the installed torch.

Why mmcv is built from source and where the wheel is cached: README.md, "The stack".
Steps: fetch sdist -> patch C++ standard -> compile wheel -> install; a failure names the
step and shows the compiler's first error. Run it with the environment's Python::

    .venv/bin/python tools/install/build_mmcv.py     # FORCE_CUDA=1: CUDA ops on a GPU box
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get('IMG2POSE_MM_CACHE', Path.home() / '.cache' / 'img2pose_mm')) / 'wheels'
# setuptools >= 70 dropped what mmcv's setup.py imports (pkg_resources).
BUILD_REQUIREMENTS = ['setuptools<70', 'wheel', 'ninja', 'psutil']


class StepError(RuntimeError):
    """A build step failed; the message names the step and the first error."""


def log(msg: str) -> None:
    print(f'[build_mmcv] {msg}', flush=True)


def torch_info() -> tuple[str, str | None, bool]:
    """Return ``(torch version, torch's CUDA version or None, CUDA visible)``."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - a setup error, not a code path
        raise StepError('step "detect torch": torch is not installed in '
                        f'{sys.executable}; install torch first') from exc
    return torch.__version__.split('+')[0], torch.version.cuda, torch.cuda.is_available()


def wants_cuda(cuda_visible: bool, torch_cuda: str | None) -> bool:
    """Build CUDA ops when ``FORCE_CUDA=1`` or a GPU is visible, never without nvcc-able torch."""
    force = os.environ.get('FORCE_CUDA', '')
    if force == '0':
        return False
    if torch_cuda is None:
        if force == '1':
            raise StepError('step "detect torch": FORCE_CUDA=1 but this torch is a CPU build')
        return False
    return force == '1' or cuda_visible


def cache_key(mmcv_version: str, torch_version: str, target: str) -> str:
    abi = sysconfig.get_config_var('SOABI') or f'cp{sys.version_info.major}{sys.version_info.minor}'
    abi = re.sub(r'[^A-Za-z0-9_.-]', '_', abi)
    return f'mmcv-{mmcv_version}_torch-{torch_version}_{abi}_{target}'


def run_step(name: str, cmd: list[str], cwd: Path | None = None,
             env: dict | None = None, log_file: Path | None = None) -> None:
    """Run one step, streaming output to ``log_file`` and naming the step on failure."""
    start = time.time()
    log(f'step "{name}": {" ".join(cmd)}')
    out = open(log_file, 'w') if log_file else subprocess.PIPE
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        if log_file is None:
            text, _ = proc.communicate()
        else:
            last = time.time()
            while proc.poll() is None:
                time.sleep(5)
                if time.time() - last >= 60:
                    last = time.time()
                    log(f'  ... "{name}" running for {time.time() - start:.0f}s, '
                        f'{count_compiled(log_file)} units compiled')
            text = log_file.read_text(errors='replace')
    finally:
        if log_file:
            out.close()
    if proc.returncode != 0:
        raise StepError(f'step "{name}" failed (exit {proc.returncode}).\n'
                        f'{first_error(text)}')
    log(f'step "{name}" done in {time.time() - start:.1f}s')


def count_compiled(log_file: Path) -> int:
    text = log_file.read_text(errors='replace')
    return len(re.findall(r'^\[\d+/\d+\]', text, flags=re.M)) or text.count(' -c ')


def first_error(text: str, context: int = 6) -> str:
    """The first compiler/python error in ``text`` with a few lines around it."""
    lines = text.splitlines()
    pattern = re.compile(r'(error:|Error:|fatal error|error \w+:|Traceback)')
    for i, line in enumerate(lines):
        if pattern.search(line):
            return '\n'.join(lines[max(0, i - 2):i + context])
    return '\n'.join(lines[-30:])


def patch_cxx_standard(setup_py: Path, std: str = 'c++20') -> int:
    """Replace mmcv's hard-coded ``-std=c++14/17`` by ``std``; return replacements."""
    text = setup_py.read_text()
    new, n = re.subn(r'-std=c\+\+1[47]', f'-std={std}', text)
    new, m = re.subn(r'/std:c\+\+1[47]', f'/std:{std}', new)
    setup_py.write_text(new)
    return n + m


def build_wheel(mmcv_version: str, dest: Path, use_cuda: bool, jobs: int,
                torch_version: str) -> Path:
    pip = [sys.executable, '-m', 'pip']
    work = Path(tempfile.mkdtemp(prefix='mmcv-build-'))
    try:
        run_step('install build requirements',
                 pip + ['install', '-q', *BUILD_REQUIREMENTS])
        run_step('fetch sdist',
                 pip + ['download', '--no-deps', '--no-binary', ':all:',
                        '--no-build-isolation', f'mmcv=={mmcv_version}', '-d', str(work)])
        sdist = next(work.glob(f'mmcv-{mmcv_version}.tar.gz'))
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter='data')
        src = work / f'mmcv-{mmcv_version}'
        if tuple(int(x) for x in torch_version.split('.')[:2]) >= (2, 12):   # headers need C++20
            n = patch_cxx_standard(src / 'setup.py')
            log(f'step "patch C++ standard": {n} flags set to -std=c++20 (torch {torch_version})')
        env = dict(os.environ, MMCV_WITH_OPS='1', MAX_JOBS=str(jobs),
                   FORCE_CUDA='1' if use_cuda else '0')
        if not use_cuda:
            env['CUDA_VISIBLE_DEVICES'] = ''
        log(f'compiling mmcv {mmcv_version} ops ({"CUDA" if use_cuda else "CPU"}, '
            f'{jobs} jobs); CPU-only takes about 10 minutes on 2 cores')
        out_dir = work / 'dist'
        run_step('compile wheel',
                 pip + ['wheel', '--no-build-isolation', '--no-deps', '-v',
                        str(src), '-w', str(out_dir)],
                 env=env, log_file=work / 'build.log')
        wheel = next(out_dir.glob('mmcv-*.whl'))
        dest.mkdir(parents=True, exist_ok=True)
        tmp = dest / (wheel.name + '.part')
        shutil.copy2(wheel, tmp)
        os.replace(tmp, dest / wheel.name)  # atomic: a half-copied wheel is never cached
        return dest / wheel.name
    finally:
        shutil.rmtree(work, ignore_errors=True)


def installed_mmcv_has_ops(mmcv_version: str) -> bool:
    code = ('import mmcv, sys; from mmcv.ops import RoIAlign, nms; '
            f'sys.exit(0 if mmcv.__version__ == "{mmcv_version}" else 1)')
    return subprocess.run([sys.executable, '-c', code], capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mmcv-version', default='2.1.0')
    parser.add_argument('--cache-dir', type=Path, default=DEFAULT_CACHE)
    parser.add_argument('--jobs', type=int, default=int(os.environ.get('MAX_JOBS', os.cpu_count() or 1)))
    parser.add_argument('--rebuild', action='store_true', help='ignore the cached wheel')
    parser.add_argument('--no-install', action='store_true', help='only build/cache the wheel')
    args = parser.parse_args(argv)
    start = time.time()
    try:
        if not args.rebuild and not args.no_install and installed_mmcv_has_ops(args.mmcv_version):
            log(f'mmcv {args.mmcv_version} with ops already installed; nothing to do')
            return 0
        torch_version, torch_cuda, cuda_visible = torch_info()
        use_cuda = wants_cuda(cuda_visible, torch_cuda)
        target = f'cu{torch_cuda.replace(".", "")}' if use_cuda else 'cpu'
        dest = args.cache_dir / cache_key(args.mmcv_version, torch_version, target)
        cached = sorted(dest.glob('mmcv-*.whl'))
        if cached and not args.rebuild:
            wheel = cached[-1]
            log(f'using cached wheel {wheel}')
        else:
            wheel = build_wheel(args.mmcv_version, dest, use_cuda, args.jobs, torch_version)
            log(f'cached {wheel}')
        if not args.no_install:
            run_step('install wheel', [sys.executable, '-m', 'pip', 'install', '-q',
                                       '--force-reinstall', '--no-deps', str(wheel)])
            if not installed_mmcv_has_ops(args.mmcv_version):
                raise StepError('step "verify": mmcv imports but mmcv.ops is unusable')
    except StepError as exc:
        log(f'FAILED after {time.time() - start:.0f}s: {exc}')
        return 1
    log(f'done in {time.time() - start:.0f}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
