"""What the converters and tools share while writing files: atomic writes (a reader sees
the old file or the new one, never half of one) and a progress bar."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, TypeVar, Union

T = TypeVar('T')


def atomic_write(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write ``data`` to ``path`` (folders created) through a temporary file renamed into
    place with ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def with_progress(items: Iterable[T], total: int, enabled: bool = True,
                  file: Optional[IO[str]] = None) -> Iterator[T]:
    """``items``, with mmengine's progress bar of ``total`` steps on ``file`` (default:
    stdout) advanced after each one and a newline after the last; ``items`` alone when
    not ``enabled`` or ``total`` is 0."""
    if not enabled or not total:
        yield from items
        return
    from mmengine.utils import ProgressBar
    file = file or sys.stdout
    bar = ProgressBar(total, file=file)
    for item in items:
        yield item
        bar.update()
    file.write('\n')
    file.flush()
