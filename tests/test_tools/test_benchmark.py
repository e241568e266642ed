"""tools/analysis_tools/benchmark.py times two-stage and one-stage models side by side."""
import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', REPO / 'tools' / 'analysis_tools' / 'benchmark.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_stage_and_one_stage_side_by_side(tmp_path, monkeypatch, capsys):
    tool = load_benchmark()
    out = tmp_path / 'bench.json'
    monkeypatch.setattr(sys, 'argv', [
        'benchmark.py', str(REPO / 'configs' / 'img2pose_r18.py'),
        str(REPO / 'configs' / 'retina_img2pose_r18_fpn.py'), '--img-size', '96', '128',
        '--num-proposals', '50', '--repeats', '1', '--warmup', '0', '--train',
        '--batch-size', '1', '--threads', '1', '--out', str(out)])
    tool.main()
    two, one = json.loads(out.read_text())
    assert two['stages'] == ['backbone_fpn', 'rpn', 'roi_features', 'heads', 'decode_nms']
    assert one['stages'] == ['backbone_fpn', 'dense_head', 'decode_nms']
    assert two['inference']['num_proposals'] == 50
    # score threshold 0: every top-k anchor is decoded, NMS keeps some
    anchors = one['inference']['num_anchors']
    levels = [(12, 16), (6, 8), (3, 4), (2, 2), (1, 1)]     # P3-P7 of a 96 x 128 input
    assert anchors == 3 * sum(h * w for h, w in levels)
    assert 0 < one['inference']['num_detections'] <= one['inference']['num_proposals'] <= anchors
    for res in (two, one):
        inf = res['inference']
        assert inf['sum_of_stages'] > 0 and inf['end_to_end'] > 0
        assert res['training']['iter_ms'] > 0
    printed = capsys.readouterr().out
    assert 'dense_head' in printed and 'x\n' in printed
