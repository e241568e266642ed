"""How GT poses reach the heads' targets: :class:`PoseSamplingWrapper` adds ``pos_gt_poses``
to the sampling results (read through ``pos_assigned_gt_inds`` as ``FCNMaskHead.get_targets``
does), so mmdet's own ``loss`` loops run unchanged (docs/conventions.md, "The data
contract"); :func:`encode_pose_targets` turns them into normalised prior-local targets.
"""
from __future__ import annotations

from typing import Any, Tuple

import torch
from mmdet.models.task_modules.samplers import SamplingResult
from mmengine.structures import InstanceData
from torch import Tensor

from img2pose_mm.structures import FacePoses

#: What stands in for a missing GT pose before encoding (its weight is 0): any pose in
#: front of the camera keeps the encoding finite.
PLACEHOLDER_POSE = (0., 0., 0., 0., 0., 1.)


def encode_pose_targets(bbox_coder, priors: Tensor, poses: FacePoses) -> Tuple[Tensor, Tensor]:
    """Pose targets of ``N`` priors of one image and their weights.

    Args:
        bbox_coder: a :class:`~img2pose_mm.task_modules.PoseBBoxCoder`.
        priors: ``(N, 4)`` anchors or proposals.
        poses: the GT pose matched to each prior, ``N`` rows in the frame of
            ``poses.img_shape``.

    Returns:
        ``(targets (N, 6), weights (N,))``: each GT pose encoded in its prior's frame;
        weight 0 where the face has no pose.
    """
    valid = poses.valid.to(priors.device)
    gt = torch.where(valid[:, None], poses.tensor.to(priors), priors.new_tensor(PLACEHOLDER_POSE))
    return bbox_coder.encode(priors, gt, poses.img_shape), valid.to(priors)


class PoseSamplingWrapper:
    """A sampler whose results also carry ``pos_gt_poses``.

    Args:
        sampler: any mmdet sampler (``RandomSampler``, ``OHEMSampler``, ...).
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def sample(self, assign_result, pred_instances: InstanceData, gt_instances: InstanceData,
               *args, **kwargs) -> SamplingResult:
        """The wrapped sampler's result plus ``pos_gt_poses``."""
        result = self.sampler.sample(assign_result, pred_instances, gt_instances, *args,
                                     **kwargs)
        poses = gt_instances.get('poses', None)
        if not isinstance(poses, FacePoses):
            raise TypeError('the 6DoF head needs gt_instances.poses as FacePoses (packed by '
                            f'PackFacePoseInputs), got {type(poses).__name__}')
        result.pos_gt_poses = poses[result.pos_assigned_gt_inds.long()]
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sampler, name)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.sampler!r})'


__all__ = ['PoseSamplingWrapper', 'encode_pose_targets', 'PLACEHOLDER_POSE']
