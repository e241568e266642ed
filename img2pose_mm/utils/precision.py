"""Keep pose geometry in full precision when the network runs under autocast."""
from __future__ import annotations

import functools
import platform
from typing import Callable

import torch

_REDUCED = (torch.float16, torch.bfloat16)


def _upcast(value):
    if isinstance(value, torch.Tensor) and value.dtype in _REDUCED:
        return value.float()
    return value


def full_precision(fn: Callable) -> Callable:
    """Run ``fn`` with autocast disabled and float16/bfloat16 tensor arguments in float32.

    Pose geometry (rotation vectors, SVD, projections of points hundreds of pixels
    away) loses too much in reduced precision, and some of it (SVD, determinants) has
    no bfloat16 kernel on CPU.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args = tuple(_upcast(a) for a in args)
        kwargs = {k: _upcast(v) for k, v in kwargs.items()}
        if torch.compiler.is_exporting():
            # an exported graph has no autocast to turn off (and the context would wrap
            # the geometry in an autocast region of the graph)
            return fn(*args, **kwargs)
        with torch.autocast('cpu', enabled=False):
            if torch.cuda.is_available():
                with torch.autocast('cuda', enabled=False):
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)

    return wrapped


def cpu_bf16_instructions() -> bool:
    """Whether this CPU has bfloat16 arithmetic instructions.

    x86: AVX512-BF16 or AMX-BF16 (the CPU flags torch reads with cpuinfo). ARM: the
    ``bf16`` feature (Armv8.6 BFMMLA/BFDOT). oneDNN's own answer
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is not enough: it is also true on
    AVX512 CPUs without either, where it emulates bfloat16 with float32 instructions.
    """
    caps = {}
    get_capabilities = getattr(torch.cpu, 'get_capabilities', None)
    if get_capabilities is not None:
        try:
            caps = get_capabilities()
        except RuntimeError:
            caps = {}
    if caps.get('avx512_bf16') or caps.get('amx_bf16'):
        return True
    if platform.machine().lower() in ('aarch64', 'arm64'):
        try:
            with open('/proc/cpuinfo') as f:
                return any(line.startswith('Features') and ' bf16' in f' {line.split(":", 1)[-1]}'
                           for line in f)
        except OSError:
            return False
    return False


def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` computes bfloat16 natively (not emulated in software).

    CUDA: the device's own answer. CPU: bfloat16 instructions
    (:func:`cpu_bf16_instructions`: AVX512-BF16, AMX or ARM's bf16) that oneDNN also
    uses. Without them bfloat16 runs emulated, slower than float32 (docs/benchmarks.md).
    """
    if device_type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == 'cpu':
        try:
            onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
        return onednn and cpu_bf16_instructions()
    return True
