"""What the converters and tools share while writing files: atomic writes (a reader sees
the old file or the new one, never half of one), image files and a progress bar."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Sequence, TypeVar, Union

import numpy as np

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


def write_rgb_image(path: Union[str, os.PathLike], image: np.ndarray,
                    params: Sequence[int] = ()) -> None:
    """Encode an RGB uint8 ``(H, W, 3)`` image in the format of ``path``'s extension (cv2,
    with ``cv2.imencode``'s ``params``) and write it with :func:`atomic_write`."""
    import cv2
    path = Path(path)
    try:
        ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(image[..., ::-1]), list(params))
    except cv2.error as err:               # e.g. no encoder for the extension
        raise ValueError(f'{path}: cannot encode an image as {path.suffix!r}: {err}') from err
    if not ok:
        raise ValueError(f'{path}: cannot encode an image as {path.suffix!r}')
    atomic_write(path, buf.tobytes())


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
