"""Distributed runs without CUDA: gloo instead of nccl, DDP without device ids."""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a ``pytorch``-launched run on a machine without CUDA.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally
    and wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail without a
    GPU. Here the gloo process group is initialised before the Runner is built (the
    Runner then skips ``init_dist``) and the config gets a DDP wrapper without device
    ids. Does nothing when CUDA is available or the run is not distributed.

    Returns:
        Whether the CPU fallback was applied.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(f'launcher {launcher!r} needs CUDA; on CPU use torchrun '
                           '(tools/dist_train.sh / tools/dist_test.sh)')
    if not torch_dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', 1800)
        torch_dist.init_process_group(
            backend='gloo', init_method='env://', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']), timeout=timedelta(seconds=timeout))
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return True


def teardown_distributed() -> None:
    """Let every rank finish before the process group goes away (gloo aborts otherwise)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
