import os

import numpy as np
import pytest
import torch

os.environ.setdefault('OMP_NUM_THREADS', '2')
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """Registry lookups resolve in mmdet's scope whatever an earlier test left behind."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
