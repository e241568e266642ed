"""Small helpers shared by the metrics: reading data samples as numpy."""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional, Tuple

import numpy as np
import torch


def to_numpy(value: Any, dtype=np.float64) -> np.ndarray:
    """Tensor / boxes object / array / list -> numpy array of ``dtype``."""
    if hasattr(value, 'tensor'):          # mmdet BaseBoxes
        value = value.tensor
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def get_field(container: Any, key: str, default: Any = None) -> Any:
    """``container[key]`` for dicts and data elements, ``default`` when absent."""
    if container is None:
        return default
    if isinstance(container, dict):
        return container.get(key, default)
    return getattr(container, key, default)


def sample_name(data_sample: dict) -> str:
    """A readable id of a data sample for error messages."""
    for key in ('img_path', 'img_id'):
        if data_sample.get(key) is not None:
            return str(data_sample[key])
    return '<unnamed sample>'


def event_and_name(data_sample: dict) -> Tuple[str, str, str]:
    """WIDER ``(event, name, file_name)`` of a sample.

    Uses the ``event``/``name`` meta keys when packed, else derives them from
    ``img_path`` (``.../<event>/<name>.<ext>``).
    """
    img_path: Optional[str] = data_sample.get('img_path')
    file_name = osp.basename(img_path) if img_path else None
    event, name = data_sample.get('event'), data_sample.get('name')
    if event is None or name is None:
        if not img_path:
            raise KeyError('WIDER FACE evaluation needs `event`/`name` or `img_path` in '
                           f'the data sample meta, got keys {sorted(data_sample)}')
        event = event if event is not None else osp.basename(osp.dirname(img_path))
        name = name if name is not None else osp.splitext(file_name)[0]
    return str(event), str(name), file_name or f'{name}.jpg'
