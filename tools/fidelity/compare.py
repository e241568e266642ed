"""Pairing two detectors' outputs on one image and measuring how far apart they are.

The quantities, tolerances and the pairing: docs/fidelity.md, "The comparison tool".
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np

DEFAULT_TOLERANCES = dict(box=1.0, score=1e-4, rotation=1e-4, translation=1e-4)
QUANTITIES = ('box', 'score', 'rotation', 'translation')


def _rotation_matrices(rotvecs: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, float64, ``(N, 3) -> (N, 3, 3)``."""
    rotvecs = np.asarray(rotvecs, dtype=np.float64).reshape(-1, 3)
    angle = np.linalg.norm(rotvecs, axis=1)
    axis = np.divide(rotvecs, angle[:, None], out=np.zeros_like(rotvecs),
                     where=angle[:, None] > 0)
    x, y, z = axis.T
    zero = np.zeros_like(x)
    cross = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    sin, cos = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    outer = axis[:, :, None] * axis[:, None, :]
    return cos * np.eye(3) + sin * cross + (1 - cos) * outer


def pairwise_differences(ref: Mapping[str, np.ndarray], ours: Mapping[str, np.ndarray]
                         ) -> Dict[str, np.ndarray]:
    """Every quantity's difference between each reference detection (rows) and each of
    ours (columns): ``{'box', 'score', 'rotation', 'translation'}`` of shape ``(N, M)``."""
    rb, ob = (np.asarray(d['boxes'], np.float64).reshape(-1, 4) for d in (ref, ours))
    rs, os_ = (np.asarray(d['scores'], np.float64).reshape(-1) for d in (ref, ours))
    rp, op = (np.asarray(d['poses'], np.float64).reshape(-1, 6) for d in (ref, ours))
    box = np.abs(rb[:, None, :] - ob[None, :, :]).max(-1, initial=0.0)
    score = np.abs(rs[:, None] - os_[None, :])
    ra, oa = _rotation_matrices(rp[:, :3]), _rotation_matrices(op[:, :3])
    # angle of R_a^T R_b from its trace (clipped against rounding)
    trace = np.einsum('nij,mij->nm', ra, oa)
    rotation = np.arccos(np.clip((trace - 1) / 2, -1.0, 1.0))
    # near 0 the arccos loses precision: use the chord instead (2 asin(|R_a - R_b|_F / sqrt(8)))
    chord = np.sqrt(np.maximum(((ra[:, None] - oa[None]) ** 2).sum((-1, -2)), 0.0))
    small = rotation < 1e-2
    rotation = np.where(small, 2 * np.arcsin(np.clip(chord / np.sqrt(8), 0, 1)), rotation)
    dist = np.linalg.norm(rp[:, 3:], axis=1)[:, None]
    translation = np.linalg.norm(rp[:, None, 3:] - op[None, :, 3:], axis=-1) / np.maximum(
        dist, 1e-12)
    return dict(box=box, score=score, rotation=rotation, translation=translation)


def match_detections(ref: Mapping[str, np.ndarray], ours: Mapping[str, np.ndarray],
                     tolerances: Optional[Mapping[str, float]] = None) -> Dict[str, object]:
    """Pair ``ours`` with the reference ``ref`` (dicts of ``boxes``, ``scores``, ``poses``).

    Returns:
        ``num_ref``, ``num_ours``, ``num_pairs``, ``num_within`` (pairs agreeing in every
        quantity), ``share_within`` (``num_within / max(num_ref, num_ours)``, 1 when both
        are empty), ``within`` (per quantity: pairs within its tolerance), ``max`` (per
        quantity: the largest difference over the pairs), ``pairs`` ``(P, 2)`` indices
        and ``cost`` ``(P,)``.
    """
    from scipy.optimize import linear_sum_assignment
    tol = dict(DEFAULT_TOLERANCES, **(tolerances or {}))
    n, m = len(np.asarray(ref['scores']).reshape(-1)), len(np.asarray(ours['scores']).reshape(-1))
    result: Dict[str, object] = dict(num_ref=n, num_ours=m, tolerances=tol)
    if n == 0 or m == 0:
        result.update(num_pairs=0, num_within=0, share_within=1.0 if n == m else 0.0,
                      within={q: 0 for q in QUANTITIES}, max={q: 0.0 for q in QUANTITIES},
                      pairs=np.zeros((0, 2), np.int64), cost=np.zeros(0))
        return result
    diffs = pairwise_differences(ref, ours)
    cost = np.max(np.stack([diffs[q] / tol[q] for q in QUANTITIES]), axis=0)
    # the assignment works on a bounded cost (hopeless pairs all cost the same)
    rows, cols = linear_sum_assignment(np.minimum(cost, 1e6))
    pair_cost = cost[rows, cols]
    within = {q: int((diffs[q][rows, cols] <= tol[q]).sum()) for q in QUANTITIES}
    num_within = int((pair_cost <= 1.0).sum())
    result.update(num_pairs=len(rows), num_within=num_within,
                  share_within=num_within / max(n, m), within=within,
                  max={q: float(diffs[q][rows, cols].max()) for q in QUANTITIES},
                  pairs=np.stack([rows, cols], 1), cost=pair_cost)
    return result


__all__ = ['DEFAULT_TOLERANCES', 'QUANTITIES', 'pairwise_differences', 'match_detections']
