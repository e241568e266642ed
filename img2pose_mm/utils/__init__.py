from .checkpoint import register_checkpoint_safe_globals
from .device_gate import DEFAULT_FAST_DEVICES, device_type_of, record_paths, takes_fast_path
from .dist import setup_cpu_distributed, teardown_distributed
from .fast_inference import autocast_forward, compile_backbone, enable_bf16_inference
from .files import atomic_write, with_progress, write_rgb_image
from .memory_format import weight_like
from .precision import full_precision, native_bf16

__all__ = ['register_checkpoint_safe_globals', 'DEFAULT_FAST_DEVICES', 'device_type_of',
           'record_paths', 'takes_fast_path', 'setup_cpu_distributed', 'teardown_distributed',
           'autocast_forward', 'compile_backbone', 'enable_bf16_inference', 'full_precision',
           'native_bf16', 'weight_like', 'atomic_write',
           'with_progress', 'write_rgb_image']
