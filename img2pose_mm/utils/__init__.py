from .checkpoint import register_checkpoint_safe_globals
from .dist import setup_cpu_distributed, teardown_distributed
from .fast_inference import compile_backbone, enable_bf16_inference
from .memory_format import weight_like
from .precision import full_precision, native_bf16

__all__ = ['register_checkpoint_safe_globals', 'setup_cpu_distributed', 'teardown_distributed',
           'compile_backbone', 'enable_bf16_inference', 'full_precision', 'native_bf16',
           'weight_like']
