"""tests/conftest.py deletes what passing tests wrote (the suite writes GBs of checkpoints).

An inner pytest session runs this repository's conftest on three small modules: a module
fixture's directory is gone when its module ends, a session fixture's directory that a
module's second test created survives for the next module, and a failing module keeps
everything it wrote.
"""
import re
from pathlib import Path

pytest_plugins = ['pytester']

CONFTEST = Path(__file__).resolve().parents[1] / 'conftest.py'

SHARED_FIXTURE = '''

@pytest.fixture(scope='session')
def shared(tmp_path_factory):
    path = tmp_path_factory.mktemp('shared')
    (path / 'weights.pth').write_bytes(b'x' * 1000)
    return path
'''

MODULE_A = '''
import pytest

@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    path = tmp_path_factory.mktemp('converted')
    (path / 'model.onnx').write_bytes(b'x' * 1000)
    return path

def test_uses_module_dir(converted):
    assert (converted / 'model.onnx').exists()

def test_second_creates_shared(shared):
    assert (shared / 'weights.pth').exists()
'''

MODULE_B = '''
def test_listing(shared, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    assert (shared / 'weights.pth').exists()
    print('LEFT', sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink()))
'''

MODULE_C = '''
import pytest

@pytest.fixture(scope='module')
def broken(tmp_path_factory):
    path = tmp_path_factory.mktemp('broken')
    (path / 'log.txt').write_text('kept for a look')
    return path

def test_fails(broken):
    assert False
'''


def test_passing_modules_leave_nothing_failing_ones_keep_theirs(pytester):
    pytester.makeconftest(CONFTEST.read_text() + SHARED_FIXTURE)
    pytester.makeini('[pytest]\ntmp_path_retention_policy = failed\n')
    pytester.makepyfile(test_a=MODULE_A, test_b=MODULE_B, test_c=MODULE_C)
    result = pytester.runpytest_subprocess('-s', '-p', 'no:cacheprovider')
    result.assert_outcomes(passed=3, failed=1)
    left = re.findall(r'LEFT \[.*?\]', result.stdout.str())
    assert left == ["LEFT ['shared0']"], result.stdout.str()
    base = pytester.path / 'runpytest-0'  # the inner session's --basetemp
    assert (base / 'broken0' / 'log.txt').read_text() == 'kept for a look'
    assert not (base / 'converted0').exists()
