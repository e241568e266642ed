"""tools/demo_pipeline.py's progress: mmengine's ETA parsed, the pipeline's ETA printed."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location('demo_pipeline',
                                                  REPO / 'tools' / 'demo_pipeline.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault('demo_pipeline', module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('line, seconds', [
    ('Epoch(train) [3][130/200]  lr: 4.2e-04  eta: 0:13:01  time: 0.5408', 13 * 60 + 1),
    ('Epoch(train) [1][10/200]  eta: 2:18:00  time: 4.1613', (2 * 60 + 18) * 60),
    ('Epoch(train) [1][10/9000]  eta: 1 day, 2:03:04  time: 4.1', 26 * 3600 + 3 * 60 + 4),
    ('Epoch(test) [20/25]    eta: 0:00:02  time: 0.5240', 2),
    ('Epoch(test) [25/25]    face/all: 0.9091  pose/yaw: 13.0667', None),
])
def test_parse_eta_reads_mmengine_log_lines(demo, line, seconds):
    assert demo.parse_eta(line) == seconds


def test_progress_adds_the_later_phases_to_the_running_one(demo, capsys):
    progress = demo.Progress(['synthetic dataset', 'training', 'testing'], every=0)
    progress.begin('training', later=30.0)
    # the testing phase's estimate follows the training's seconds per iteration
    progress.later_from_iter_time = lambda iter_s: 100 * iter_s
    progress.eta(phase_left=600.0, iter_seconds=0.6)
    out = capsys.readouterr().out
    assert 'phase 2/3: training' in out
    assert 'phase 2/3 training: pipeline ETA 11.0 min' in out     # (600 + 60) s
