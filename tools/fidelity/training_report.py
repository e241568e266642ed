"""How far two training traces are apart, in full or against the stored original's
(the measures: docs/fidelity.md, "Training")."""
from __future__ import annotations

import zlib
from typing import Dict, List, Mapping, Optional

import numpy as np
import torch

from .training import LOSS_NAMES, Trace

#: Parameters whose gradient is zero in exact arithmetic -> the weight it is measured against.
ANALYTICALLY_ZERO = {'roi_head.bbox_head.fc_pose.0.bias': 'roi_head.bbox_head.fc_pose.0.weight'}
PROJECTIONS = 4
TOLERANCES = dict(loss=1e-5, grad=1e-4, param=1e-4)


def _directions(key: str, numel: int) -> torch.Tensor:
    """``(PROJECTIONS, numel)`` standard normal directions seeded by the parameter's name."""
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    return torch.randn(PROJECTIONS, numel, generator=gen, dtype=torch.float32)


def sketch(tensors: Mapping[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """Per tensor ``[norm, projection_1, ..., projection_k]`` (float64)."""
    out = {}
    for key, value in tensors.items():
        flat = value.detach().reshape(-1).float()
        proj = (_directions(key, flat.numel()).double() @ flat.double()).numpy()
        out[key] = np.concatenate([[float(flat.double().norm())], proj])
    return out


def _sketch_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated ``|x_a - x_b|`` from two sketches (the larger of the two estimates)."""
    return float(max(abs(a[0] - b[0]), np.sqrt(np.mean((a[1:] - b[1:]) ** 2))))


def _denominator(key: str, norms: Mapping[str, float]) -> float:
    return norms[ANALYTICALLY_ZERO.get(key, key)]


def _worst(errors: Dict[str, float]) -> Dict[str, object]:
    key = max(errors, key=errors.get)
    return dict(max=errors[key], at=key, count=len(errors))


def compare_traces(ref: Trace, ours: Trace) -> Dict[str, Dict[str, object]]:
    """Every measure of docs/fidelity.md, "Training", ``ours`` against ``ref`` (full tensors)."""
    missing = sorted(set(ref.grads) ^ set(ours.grads))
    if missing:
        raise KeyError(f'parameters with a gradient on one side only: {missing[:10]}')
    loss0 = {k: abs(ours.losses[0][k] - v) / abs(v) for k, v in ref.losses[0].items()}
    loss_all = {f'{k} (step {i})': abs(o[k] - v) / abs(v)
                for i, (r, o) in enumerate(zip(ref.losses, ours.losses)) for k, v in r.items()}
    gnorm = {k: float(g.double().norm()) for k, g in ref.grads.items()}
    grad = {k: float((ours.grads[k].double() - g.double()).norm()) / _denominator(k, gnorm)
            for k, g in ref.grads.items()}
    param = {k: float((ours.params[k].double() - p.double()).norm() / p.double().norm())
             for k, p in ref.params.items()}
    result = dict(loss=_worst(loss0), loss_all_steps=_worst(loss_all), grad=_worst(grad),
                  param=_worst(param), losses=loss0)
    if ref.initial:
        update = {k: float((ours.params[k].double() - p.double()).norm()
                           / (p.double() - ref.initial[k].double()).norm().clamp_min(1e-30))
                  for k, p in ref.params.items()}
        result['update'] = _worst(update)
    return result


def gradient_errors(fixture: Mapping[str, np.ndarray], grads: Mapping[str, torch.Tensor]
                    ) -> Dict[str, float]:
    """Each of ``grads``' estimated relative difference to the stored original's gradient."""
    ref = dict(zip((str(k) for k in fixture['param_names']), fixture['grad_sketch']))
    norms = {k: v[0] for k, v in ref.items()}
    ours = sketch(grads)
    return {k: _sketch_distance(ours[k], ref[k]) / _denominator(k, norms) for k in grads}


def compare_to_fixture(fixture: Mapping[str, np.ndarray], ours: Trace,
                       initial: Mapping[str, torch.Tensor]) -> Dict[str, Dict[str, object]]:
    """:func:`compare_traces` against a stored original trace (:func:`fixture_arrays`); a
    trace of fewer steps than the fixture's is compared in its losses and gradients only."""
    names = [str(n) for n in fixture['loss_names']]
    ref_losses = fixture['losses']
    loss0 = {k: abs(ours.losses[0][k] - ref_losses[0, i]) / abs(ref_losses[0, i])
             for i, k in enumerate(names)}
    loss_all = {f'{k} (step {s})': abs(ours.losses[s][k] - ref_losses[s, i]) / abs(ref_losses[s, i])
                for s in range(min(len(ref_losses), len(ours.losses))) for i, k in enumerate(names)}
    keys = [str(k) for k in fixture['param_names']]
    if sorted(keys) != sorted(ours.grads):
        raise KeyError('the parameters with a gradient differ from the fixture\'s: '
                       f'{sorted(set(keys) ^ set(ours.grads))[:10]}')
    result = dict(loss=_worst(loss0), loss_all_steps=_worst(loss_all),
                  grad=_worst(gradient_errors(fixture, ours.grads)), losses=loss0)
    if len(ours.losses) == len(ref_losses):
        ref_u = dict(zip(keys, fixture['update_sketch']))
        our_u = sketch({k: ours.params[k] - initial[k] for k in keys})
        param_norm = dict(zip(keys, fixture['param_norms']))
        result['param'] = _worst({k: _sketch_distance(our_u[k], ref_u[k]) / param_norm[k]
                                  for k in keys})
        result['update'] = _worst({k: _sketch_distance(our_u[k], ref_u[k]) / max(ref_u[k][0], 1e-30)
                                   for k in keys})
    return result


def passes(result: Mapping[str, Mapping[str, object]],
           tolerances: Optional[Mapping[str, float]] = None) -> bool:
    """Every loss term, gradient and final parameter (where measured) within tolerance."""
    tol = dict(TOLERANCES, **(tolerances or {}))
    return all(result[k]['max'] <= tol[k] for k in ('loss', 'grad', 'param') if k in result)


def fixture_arrays(ref: Trace, images: List[np.ndarray], faces, settings: str
                   ) -> Dict[str, np.ndarray]:
    """The original's trace as numbers: loss terms per step, gradient and update sketches,
    parameter norms, its sampled anchors / RoIs per step and image, and the inputs."""
    names = sorted(LOSS_NAMES.values())
    keys = sorted(ref.grads)
    grads, updates = sketch(ref.grads), sketch({k: ref.params[k] - ref.initial[k] for k in keys})
    arrays = dict(
        settings=np.array(settings), loss_names=np.array(names),
        losses=np.array([[step[k] for k in names] for step in ref.losses], np.float64),
        param_names=np.array(keys), grad_sketch=np.stack([grads[k] for k in keys]),
        update_sketch=np.stack([updates[k] for k in keys]),
        param_norms=np.array([float(ref.params[k].double().norm()) for k in keys]),
        images=np.stack(images), num_images=np.array(len(images)))
    for i, (poses, boxes) in enumerate(faces):
        arrays[f'faces/{i}/poses'], arrays[f'faces/{i}/boxes'] = poses, boxes
    for kind, picks in ref.picks.items():
        for j, pick in enumerate(picks):
            for side in ('pos', 'neg'):
                value = pick[side].numpy()
                arrays[f'picks/{kind}/{j}/{side}'] = (value.astype(np.int32) if kind == 'rpn'
                                                      else value.astype(np.float32))
    return arrays


def fixture_picks(fixture: Mapping[str, np.ndarray]) -> Dict[str, list]:
    """The stored sampler draws, in call order, as :class:`~.sampling.ReplaySampler` takes them."""
    picks: Dict[str, list] = dict(rpn=[], roi=[])
    for kind in picks:
        j = 0
        while f'picks/{kind}/{j}/pos' in fixture:
            picks[kind].append({side: torch.from_numpy(
                fixture[f'picks/{kind}/{j}/{side}'].astype(
                    np.int64 if kind == 'rpn' else np.float32)) for side in ('pos', 'neg')})
            j += 1
    return picks


def format_training_table(rows: Mapping[str, Mapping[str, Mapping[str, object]]]) -> str:
    """One block per compared model: each loss term and the worst gradient / parameter."""
    lines = []
    for name, result in rows.items():
        lines.append(f'{name}:')
        for term, err in sorted(result['losses'].items()):
            lines.append(f'  {term:<24}{err:>10.2e}')
        for what, label in (('loss_all_steps', 'loss, all steps'), ('grad', 'gradient'),
                            ('param', 'parameter, last step'), ('update', 'change over the steps')):
            if what in result:
                r = result[what]
                lines.append(f'  {label:<24}{r["max"]:>10.2e}  (worst of {r["count"]}: {r["at"]})')
        if 'notes' in result:
            lines.append('  ' + ', '.join(f'{k} {v:g}' for k, v in result['notes'].items()))
    tol = ', '.join(f'{k} {v:g}' for k, v in TOLERANCES.items())
    lines.append(f'relative differences to the original; tolerances: {tol}')
    return '\n'.join(lines)
