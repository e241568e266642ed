"""Let mmengine checkpoints load under torch >= 2.6 (``weights_only=True`` by default).

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; its checkpoints hold a
``message_hub`` with :class:`HistoryBuffer` objects and numpy arrays/scalars. We allow
exactly those types, and stop HistoryBuffer from pickling its class-level table of
statistics functions, which would need the unsafe ``getattr`` global.
"""
from __future__ import annotations

import numpy as np
import torch


def _numpy_safe_globals() -> list:
    try:
        multiarray = np._core.multiarray   # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    entries: list = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # checkpoints written under numpy 1.x name these under numpy.core
    entries += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
                (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        entries += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return entries


def _history_buffer_getstate(self) -> dict:
    state = self.__dict__.copy()
    # class-level registry of functions: pickled it needs ``getattr``; it is rebuilt on load
    state.pop('_statistics_methods', None)
    return state


def _history_buffer_setstate(self, state: dict) -> None:
    state = dict(state)
    state.pop('_statistics_methods', None)   # checkpoints written before the patch
    self.__dict__.update(state)
    self._set_default_statistics()


def register_checkpoint_safe_globals() -> list:
    """Allow mmengine's HistoryBuffer and numpy objects in ``torch.load``; return them."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    HistoryBuffer.__setstate__ = _history_buffer_setstate
    if not hasattr(torch.serialization, 'add_safe_globals'):  # torch < 2.4
        return []
    entries = [HistoryBuffer] + _numpy_safe_globals()
    torch.serialization.add_safe_globals(entries)
    return entries
