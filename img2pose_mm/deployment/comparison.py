"""How far two sets of detections of the same image are apart (PyTorch vs an exported graph)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import numpy as np


def _arrays(dets: Any) -> Dict[str, np.ndarray]:
    """``bboxes``/``boxes``, ``scores``, ``poses`` of an ``InstanceData`` or a dict as float64."""
    get = dets.get if isinstance(dets, dict) else (lambda key: getattr(dets, key, None))
    boxes = get('bboxes') if get('bboxes') is not None else get('boxes')
    out = {}
    for key, value, width in (('boxes', boxes, 4), ('scores', get('scores'), None),
                              ('poses', get('poses'), 6)):
        if value is None:
            raise KeyError(f'detections without {key}')
        value = value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)
        value = value.astype(np.float64)
        out[key] = value.reshape(-1, width) if width else value.reshape(-1)
    return out


@dataclass
class DetectionDiff:
    """Counts of two detection sets and, when they pair up, their largest differences.

    Detections are paired one to one at the least total difference (both sets are
    sorted by score, but scores equal to float precision may come in either order);
    ``paired`` is false when the counts differ or a value is not finite. ``poses`` is the largest
    difference of any of the 6 numbers, ``rotation`` / ``translation`` of the rotation
    vector / translation alone, ``translation_rel`` the translation difference relative
    to the translation's size.
    """

    count_a: int
    count_b: int
    paired: bool
    boxes: float = float('nan')
    scores: float = float('nan')
    poses: float = float('nan')
    rotation: float = float('nan')
    translation: float = float('nan')
    translation_rel: float = float('nan')

    def summary(self) -> str:
        if not self.paired:
            return f'detections {self.count_a} vs {self.count_b}: not paired'
        return (f'detections {self.count_a} vs {self.count_b}; max |diff| boxes '
                f'{self.boxes:.3g} px, scores {self.scores:.3g}, poses {self.poses:.3g} '
                f'(rotation {self.rotation:.3g} rad, translation {self.translation:.3g}, '
                f'relative {self.translation_rel:.3g})')

def compare_detections(dets_a: Any, dets_b: Any) -> DetectionDiff:
    """Pair two detection sets of one image and measure their largest differences."""
    a, b = _arrays(dets_a), _arrays(dets_b)
    count_a, count_b = len(a['scores']), len(b['scores'])
    if count_a != count_b:
        return DetectionDiff(count_a, count_b, paired=False)
    if count_a == 0:
        return DetectionDiff(0, 0, paired=True, boxes=0.0, scores=0.0, poses=0.0,
                             rotation=0.0, translation=0.0, translation_rel=0.0)
    # both are sorted by score; scores equal to float precision may swap places, so
    # pair each detection of a with one of b at the least total difference
    from scipy.optimize import linear_sum_assignment
    feats_a = np.concatenate([a['boxes'], a['poses'], a['scores'][:, None]], 1)
    feats_b = np.concatenate([b['boxes'], b['poses'], b['scores'][:, None]], 1)
    cost = np.abs(feats_a[:, None] - feats_b[None]).max(-1)
    if not np.isfinite(cost).all():
        return DetectionDiff(count_a, count_b, paired=False)
    rows, pairs = linear_sum_assignment(cost)
    a = {key: value[rows] for key, value in a.items()}
    b = {key: value[pairs] for key, value in b.items()}
    pose_diff = np.abs(a['poses'] - b['poses'])
    size = np.maximum(np.linalg.norm(a['poses'][:, 3:], axis=1), 1e-12)
    return DetectionDiff(
        count_a, count_b, paired=True,
        boxes=float(np.abs(a['boxes'] - b['boxes']).max()),
        scores=float(np.abs(a['scores'] - b['scores']).max()),
        poses=float(pose_diff.max()), rotation=float(pose_diff[:, :3].max()),
        translation=float(pose_diff[:, 3:].max()),
        translation_rel=float((np.linalg.norm(a['poses'][:, 3:] - b['poses'][:, 3:], axis=1)
                               / size).max()))


__all__ = ['DetectionDiff', 'compare_detections']
