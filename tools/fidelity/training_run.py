"""``compare_with_original.py --training``: the training comparison and its fixture
(docs/fidelity.md, "Training")."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .detectors import OriginalDetector
from .fixtures import stack_versions
from .inputs import converted_weights
from .original import original_commit
from .training import (
    CONFIGS,
    TRAINING_FACES,
    TRAINING_PHOTOS,
    TRAINING_SIZE,
    build_ours,
    original_trace,
    ours_trace,
    training_inputs,
)
from .training_report import compare_traces, fixture_arrays, format_training_table, passes

TRAINING_FIXTURE = 'training_r18_seed{seed}.npz'


def run_training(args) -> int:
    """Train both sides, print the table; exit status 2 when a model fails the
    tolerances or the negative control passes them."""
    images, faces = training_inputs()
    options = {}
    if args.frozen_bn_eps is not None:
        options['model.backbone.norm_cfg.eps'] = float(args.frozen_bn_eps)
    with tempfile.TemporaryDirectory(prefix='img2pose_training_') as tmp:
        weights, converted, state = converted_weights(args, Path(tmp))
        files = weights['files']
        original = OriginalDetector(args.original_repo, state, files,
                                    frozen_bn_eps=args.frozen_bn_eps)
        start = time.perf_counter()
        ref = original_trace(original.net, images, faces, args.training_steps, seed=args.seed)
        print(f'original: {args.training_steps} steps in {time.perf_counter() - start:.0f} s',
              file=sys.stderr)
        rows = {}
        for name, config in CONFIGS.items():
            start = time.perf_counter()
            model, optim_wrapper = build_ours(config, converted, options)
            trace = ours_trace(model, optim_wrapper, images, faces, args.training_steps,
                               picks={k: list(v) for k, v in ref.picks.items()})
            rows[f'img2pose_mm {name} ({config})'] = dict(compare_traces(ref, trace),
                                                         notes=trace.notes)
            print(f'{name}: {time.perf_counter() - start:.0f} s', file=sys.stderr)
        model, optim_wrapper = build_ours(CONFIGS['fast'], converted, options)
        control = ours_trace(model, optim_wrapper, images, faces, 1, picks=None, seed=args.seed)
        ref_one = type(ref)(losses=ref.losses[:1], grads=ref.grads, params=control.params)
        control_row = compare_traces(ref_one, control)
        control_row.pop('param')
        rows['negative control: samplers not equalised (1 step)'] = control_row
    source = f'seeded random, seed {args.seed}' if weights['seeded'] else files['checkpoint']
    h, w = TRAINING_SIZE
    print(f'original: {args.original_repo} @ {original_commit(args.original_repo)}; weights: '
          f'{source}; photos {", ".join(TRAINING_PHOTOS)} at {w}x{h} with {TRAINING_FACES} '
          f'faces; {args.training_steps} SGD steps (lr 1e-3, momentum 0.9, weight decay 5e-4, '
          'gradient norm clipped at 10), float32')
    print(format_training_table(rows))
    models_pass = all(passes(r) for n, r in rows.items() if not n.startswith('negative'))
    control_fails = not (control_row['loss']['max'] <= 1e-5 and control_row['grad']['max'] <= 1e-4)
    if args.write_fixture:
        if not (weights['seeded'] and weights['packaged_face']):
            print('--write-fixture stores seeded runs with the packaged face only',
                  file=sys.stderr)
            return 1
        settings = dict(seed=args.seed, depth=18, steps=args.training_steps,
                        photos=list(TRAINING_PHOTOS), size=list(TRAINING_SIZE),
                        faces=list(TRAINING_FACES), frozen_bn_eps=args.frozen_bn_eps,
                        rotation_method=args.rotation_method,
                        reference_points='img2pose_mm packaged face',
                        original_commit=original_commit(args.original_repo), **stack_versions())
        out = Path(args.write_fixture)
        out.mkdir(parents=True, exist_ok=True)
        path = out / TRAINING_FIXTURE.format(seed=args.seed)
        np.savez_compressed(path, **fixture_arrays(ref, images, faces,
                                                   json.dumps(settings, sort_keys=True)))
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB)')
    return 0 if models_pass and control_fails else 2
