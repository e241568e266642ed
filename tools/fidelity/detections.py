"""The detections comparison: both models on the same images, paired and tabulated."""
from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import torch

from .compare import DEFAULT_TOLERANCES, QUANTITIES, match_detections
from .detectors import OriginalDetector, OursDetector
from .fixtures import stack_versions, write_detections_fixture
from .inputs import converted_weights, run_images
from .original import original_commit
from .original_layout import SEEDED_POSE_MEAN, SEEDED_POSE_STDDEV


def format_table(rows: List[Dict[str, object]]) -> str:
    """Per-image counts, share within all tolerances, per-quantity shares and maxima."""
    head = (f'{"image":<12}{"size":>10}{"orig":>6}{"ours":>6}{"within":>8}'
            + ''.join(f'{q + " ok":>15}' for q in QUANTITIES)
            + ''.join(f'{"max " + q:>17}' for q in QUANTITIES))
    lines = [head, '-' * len(head)]
    for row in rows:
        m = row['match']
        pairs = max(m['num_pairs'], 1)
        lines.append(
            f'{row["name"]:<12}{row["size"]:>10}{m["num_ref"]:>6}{m["num_ours"]:>6}'
            f'{m["share_within"]:>8.2%}'
            + ''.join(f'{m["within"][q] / pairs:>15.2%}' for q in QUANTITIES)
            + ''.join(f'{m["max"][q]:>17.3g}' for q in QUANTITIES))
    total_ref = sum(r['match']['num_ref'] for r in rows)
    total_ours = sum(r['match']['num_ours'] for r in rows)
    total_within = sum(r['match']['num_within'] for r in rows)
    lines.append('-' * len(head))
    lines.append(f'{"all":<12}{"":>10}{total_ref:>6}{total_ours:>6}'
                 f'{total_within / max(total_ref, total_ours, 1):>8.2%}')
    tol = ', '.join(f'{q} {DEFAULT_TOLERANCES[q]:g}' for q in QUANTITIES)
    lines.append(f'tolerances: {tol} (box: largest coordinate difference in px; rotation: '
                 'geodesic angle in rad; translation: |dt| / |t_original|)')
    return '\n'.join(lines)


def run_detections(args) -> int:
    """Both detectors on the images of ``args``: the table (and ``--speed``'s), the
    fixture with ``--write-fixture``; exit status 2 when they disagree."""
    from tools.analysis_tools.benchmark import timed_call
    with tempfile.TemporaryDirectory(prefix='img2pose_compare_') as tmp:
        workdir = Path(tmp)
        weights, converted, state = converted_weights(args, workdir)
        files = weights['files']
        original = OriginalDetector(args.original_repo, state, files, proposals=args.proposals,
                                    score_thr=args.score_thr, frozen_bn_eps=args.frozen_bn_eps)
        ours = OursDetector(converted, proposals=args.proposals, score_thr=args.score_thr)
        images = run_images(args)
        rows, originals = [], []
        for name, rgb in images:
            ref, ref_ms = timed_call(functools.partial(original, rgb), torch.device('cpu'))
            mine, ours_ms = timed_call(functools.partial(ours, rgb), torch.device('cpu'))
            rows.append(dict(name=name, size=f'{rgb.shape[1]}x{rgb.shape[0]}',
                             match=match_detections(ref, mine)))
            originals.append(ref)
            print(f'{name}: original {len(ref["scores"])} detections in {ref_ms / 1e3:.1f} s, '
                  f'img2pose_mm {len(mine["scores"])} in {ours_ms / 1e3:.1f} s', file=sys.stderr)
        speed_table = None
        if args.speed:
            from .speed import run_speed
            speed_table = run_speed(original, ours, images, args.speed_repeats,
                                    train=not args.no_train_speed,
                                    train_batch=args.train_batch)
    source = f'seeded random, seed {args.seed}' if weights['seeded'] else files['checkpoint']
    face = 'packaged face' if weights['packaged_face'] else files['reference_points']
    print(f'original: {args.original_repo} @ {original_commit(args.original_repo)}; '
          f'weights: {source}; reference points: {face}; '
          f'rotation method {args.rotation_method}; {args.proposals} proposals; '
          f'score > {args.score_thr}; native size, scale 1')
    print(format_table(rows))
    if speed_table:
        print(speed_table)
    if args.write_fixture:
        if not (weights['seeded'] and weights['packaged_face']):
            print('--write-fixture stores seeded runs with the packaged face only (the test '
                  'must reproduce them without the original\'s files)', file=sys.stderr)
            return 1
        settings = dict(seed=args.seed, depth=18, proposals=args.proposals,
                        score_thr=args.score_thr, rotation_method=args.rotation_method,
                        pose_mean=SEEDED_POSE_MEAN.tolist(), pose_stddev=SEEDED_POSE_STDDEV.tolist(),
                        reference_points='img2pose_mm packaged face',
                        resize='native size (scale factor 1)', images=[n for n, _ in images],
                        original_commit=original_commit(args.original_repo), **stack_versions())
        path = write_detections_fixture(Path(args.write_fixture), args.seed,
                                        [n for n, _ in images], originals, settings)
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB)')
    worst = min(r['match']['share_within'] for r in rows)
    counts_equal = all(r['match']['num_ref'] == r['match']['num_ours'] for r in rows)
    return 0 if counts_equal and worst >= args.min_share else 2

