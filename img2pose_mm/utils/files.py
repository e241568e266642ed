"""Writing a file so that a reader sees the old one or the new one, never half of one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union


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
