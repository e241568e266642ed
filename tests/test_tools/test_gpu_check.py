"""tools/analysis_tools/gpu_check.py runs its checks on the CPU (``--device cpu --quick``)
and prints a table that passes; a failing check makes it exit 1."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'gpu_check.py'


def run_check(args, tmp_path, timeout=1200):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return subprocess.run([sys.executable, str(TOOL), *args, '--work-dir', str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_gpu_check_passes_on_the_cpu(tmp_path):
    out = tmp_path / 'rows.json'
    proc = run_check(['--device', 'cpu', '--quick', '--out', str(out)], tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert 'all passed' in proc.stdout
    rows = {r['check']: r for r in json.loads(out.read_text())['rows']}
    assert list(rows) == ['paths two-stage', 'paths one-stage', 'train', 'train dist',
                          'amp fp16', 'amp bf16', 'fidelity', 'inference']
    assert all(r['result'] == 'PASS' for r in rows.values()), rows
    # on the CPU every gated part takes its CPU branch
    assert rows['paths two-stage']['detail'] == ('fast: ChannelsLastDataPreprocessor, '
                                                 'FoldedBNResNet, FoldedFPN, GatherRoIExtractor, '
                                                 'Img2PoseRPNHead')
    assert rows['train dist']['detail'].startswith('2 processes (gloo)')
    table = proc.stdout[proc.stdout.index('\ncheck ') + 1:].splitlines()
    assert [line.split('  ')[0].strip() for line in table[2:-1]] == list(rows)
    assert all(' PASS ' in line for line in table[2:-1])


def test_gpu_check_fails_and_exits_1(tmp_path):
    """A check that fails (here: paths, asked for a device the model cannot take) is a
    FAIL row and exit status 1; CUDA missing is exit status 2."""
    proc = run_check(['--device', 'cuda'], tmp_path)
    assert proc.returncode == 2 and 'CUDA is not available' in proc.stderr
    proc = run_check(['--device', 'meta', '--checks', 'paths one-stage'], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'FAIL' in proc.stdout and 'FAILED: paths one-stage' in proc.stdout
