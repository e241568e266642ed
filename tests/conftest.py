import os
import shutil

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


# Disk: pyproject.toml sets tmp_path_retention_policy = "failed", so a passing test's
# tmp_path is removed as soon as it ends. Directories made with tmp_path_factory.mktemp by
# module-scoped fixtures (converted checkpoints, ONNX files: hundreds of MB each) are removed
# here when their module ends, unless a test of that module failed, so the suite's peak disk
# use stays near that of its largest module. Directories made by session- or package-scoped
# fixtures are kept: later modules use them.
_FAILED_MODULES: set = set()
_SHARED_DIRS: set = set()
_BASETEMP: list = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        _FAILED_MODULES.add(item.module.__name__)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.scope not in ('session', 'package') or not _BASETEMP:
        # (before the first module fixture below has run, its snapshot holds them anyway)
        return (yield)
    before = set(_BASETEMP[0].iterdir())
    try:
        return (yield)
    finally:
        _SHARED_DIRS.update(set(_BASETEMP[0].iterdir()) - before)


@pytest.fixture(scope='module', autouse=True)
def _remove_module_tmp_dirs(request, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    _BASETEMP[:] = [base]
    before = set(base.iterdir())
    yield
    if request.module.__name__ in _FAILED_MODULES:
        return
    for path in set(base.iterdir()) - before - _SHARED_DIRS:
        shutil.rmtree(path, ignore_errors=True)
