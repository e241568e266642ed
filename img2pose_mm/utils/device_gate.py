"""Where a part's speed branch runs: the one device check of every gated part
(docs/device_paths.md). Tests simulate another device by patching :func:`device_type_of`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Set, Union

import torch
from torch import Tensor

#: The default of every gated part's ``fast_devices``: the speed branches were measured
#: on CPUs (oneDNN); CUDA has cuDNN's and mmcv's own fast kernels.
DEFAULT_FAST_DEVICES = ('cpu', )

#: The dtypes a branch was shown equal to its stock part in (inputs, or the autocast
#: dtype): float32, float64 (the tests' exact comparisons), and bfloat16 (float32's
#: exponent range: a folded BatchNorm scale cannot overflow). float16 inputs and
#: float16 autocast take the stock branch.
SHOWN_EQUAL_DTYPES = (torch.float32, torch.float64, torch.bfloat16)

_records: Optional[Dict[str, Set[str]]] = None


def device_type_of(x: Union[Tensor, torch.device, str]) -> str:
    """The device type (``'cpu'``, ``'cuda'``, ...) of a tensor or device."""
    if isinstance(x, Tensor):
        return x.device.type
    return torch.device(x).type


def takes_fast_path(x: Union[Tensor, torch.device, str],
                    fast_devices: Sequence[str],
                    part: str = '',
                    dtypes: Optional[Sequence[torch.dtype]] = SHOWN_EQUAL_DTYPES,
                    autocast_dtypes: Optional[Sequence[torch.dtype]] = SHOWN_EQUAL_DTYPES
                    ) -> bool:
    """Whether a part's speed branch runs for the input ``x``.

    Args:
        x: the part's input tensor (or its device).
        fast_devices: the part's switch: device types that take the branch.
        part: the part's name in :func:`record_paths`.
        dtypes: input dtypes the branch was shown equal in (``None``: any); checked when
            ``x`` is a tensor.
        autocast_dtypes: autocast dtypes (on ``x``'s device) the branch was shown equal
            under (``None``: any, the branch does not compute in the autocast dtype).

    Returns:
        ``True`` for the speed branch, ``False`` for the stock (mmdet) one.
    """
    device_type = device_type_of(x)
    fast = device_type in fast_devices
    if fast and dtypes is not None and isinstance(x, Tensor):
        fast = x.dtype in dtypes
    if fast and autocast_dtypes is not None and torch.is_autocast_enabled(device_type):
        fast = torch.get_autocast_dtype(device_type) in autocast_dtypes
    if _records is not None:
        _records.setdefault(part or 'unnamed', set()).add('fast' if fast else 'stock')
    return fast


@contextmanager
def record_paths() -> Iterator[Dict[str, Set[str]]]:
    """Collect ``{part: {'fast', 'stock'}}``: the branches the gated parts take inside.

    Example:
        >>> with record_paths() as taken:
        ...     model.test_step(data)
        >>> taken
        {'ChannelsLastDataPreprocessor': {'stock'}, 'FoldedBNResNet': {'stock'}, ...}
    """
    global _records
    outer, _records = _records, {}
    try:
        yield _records
    finally:
        inner, _records = _records, outer
        if outer is not None:
            for name, taken in inner.items():
                outer.setdefault(name, set()).update(taken)
