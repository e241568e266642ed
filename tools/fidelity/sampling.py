"""The samplers' randomness made equal: the original's draws recorded, replayed on ours
(docs/fidelity.md, "Training")."""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional

import torch

#: One image's choice: ``pos`` / ``neg`` anchor indices (int64) or boxes (float, N x 4).
Pick = Dict[str, torch.Tensor]


@contextlib.contextmanager
def record_original_samples(net) -> Iterator[Dict[str, List[Pick]]]:
    """Record what the original ``FasterDoFRCNN`` ``net`` samples while the block runs:
    ``{'rpn': [Pick per image, ...], 'roi': [...]}`` in call order (image by image,
    step after step). Its samplers still draw from ``torch``'s global generator."""
    picks: Dict[str, List[Pick]] = dict(rpn=[], roi=[])
    roi = net.roi_heads
    candidates: List[torch.Tensor] = []
    real_add_gt, real_rpn, real_roi = roi.add_gt_proposals, net.rpn.fg_bg_sampler, roi.fg_bg_sampler

    def add_gt_proposals(proposals, gt_boxes):
        candidates[:] = real_add_gt(proposals, gt_boxes)
        return candidates[:]

    def recording(sampler, kind):
        def sample(matched_idxs):
            pos, neg = sampler(matched_idxs)
            for i, (p, n) in enumerate(zip(pos, neg)):
                pick = dict(pos=torch.where(p > 0)[0], neg=torch.where(n > 0)[0])
                if kind == 'roi':
                    pick = {k: candidates[i][v].detach().clone() for k, v in pick.items()}
                picks[kind].append(pick)
            return pos, neg
        return sample

    roi.add_gt_proposals = add_gt_proposals
    net.rpn.fg_bg_sampler = recording(real_rpn, 'rpn')
    roi.fg_bg_sampler = recording(real_roi, 'roi')
    try:
        yield picks
    finally:
        del roi.add_gt_proposals
        net.rpn.fg_bg_sampler, roi.fg_bg_sampler = real_rpn, real_roi


class ReplaySampler:
    """Make an mmdet ``BaseSampler`` pick the recorded ``picks`` (one per call of its
    ``sample``, in order) instead of drawing. Boxes are found among the sampler's
    candidates (mmdet's priors with the GT boxes first) as the one nearest in the largest
    coordinate difference; ``max_box_error`` is the largest such difference seen and
    ``label_mismatches`` counts picks whose positive / negative side disagrees with the
    mmdet assigner's (a real difference of the two assigners, reported, not hidden).
    """

    def __init__(self, sampler, picks: List[Pick]) -> None:
        self.sampler = getattr(sampler, 'sampler', sampler)   # PoseSamplingWrapper
        self.picks = list(picks)
        self.max_box_error = 0.0
        self.label_mismatches = 0
        self._current: Optional[Pick] = None

    def _indices(self, chosen: torch.Tensor, bboxes) -> torch.Tensor:
        if not chosen.is_floating_point():
            return chosen.to(torch.long)
        candidates = getattr(bboxes, 'tensor', bboxes)
        if len(chosen) == 0:
            return torch.zeros(0, dtype=torch.long)
        error = (chosen[:, None, :].to(candidates) - candidates[None]).abs().amax(-1)
        best, index = error.min(1)
        self.max_box_error = max(self.max_box_error, float(best.max()))
        return index

    def _pos(self, assign_result, num_expected, bboxes=None, **kwargs) -> torch.Tensor:
        self._current = self.picks.pop(0)
        index = self._indices(self._current['pos'], bboxes)
        self.label_mismatches += int((assign_result.gt_inds[index] <= 0).sum())
        return index

    def _neg(self, assign_result, num_expected, bboxes=None, **kwargs) -> torch.Tensor:
        index = self._indices(self._current['neg'], bboxes)
        self.label_mismatches += int((assign_result.gt_inds[index] != 0).sum())
        return index

    def __enter__(self) -> ReplaySampler:
        self.sampler._sample_pos, self.sampler._sample_neg = self._pos, self._neg
        return self

    def __exit__(self, *exc) -> None:
        del self.sampler._sample_pos, self.sampler._sample_neg
