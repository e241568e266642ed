"""What every pose head (``DoFBBoxHead``, ``DoFRetinaHead``) does after decoding poses and
projecting their boxes: NMS (or pose voting), cap, rescale. Test-config keys: ``nms``
(mmcv's ``batched_nms`` on the projected boxes, its scores kept: soft-NMS rescores),
``pose_voting=dict(iou_thr=...)`` (instead of NMS, :func:`suppress_duplicates`),
``max_per_img`` (``<= 0`` keeps all, as img2pose).
"""
from __future__ import annotations

from typing import Tuple

from mmcv.ops import batched_nms
from mmdet.structures.bbox import scale_boxes
from mmengine.structures import InstanceData
from torch import Tensor

from img2pose_mm.structures import FaceModel, FacePoses
from img2pose_mm.test_time_augs.box_voting import pose_box_voting

DEFAULT_NMS = dict(type='nms', iou_threshold=0.5)


def rescale_detections(bboxes: Tensor, poses: Tensor, img_meta: dict,
                       face_model: FaceModel) -> Tuple[Tensor, Tensor]:
    """Boxes and global poses in the network input mapped to the original image.

    The input was the original resized by ``img_meta['scale_factor']`` (``(w_scale,
    h_scale)``) to ``img_shape``; boxes are scaled back and the poses re-expressed in the
    camera of ``ori_shape`` (:meth:`FacePoses.rescale_` with the face model's rotation
    method).
    """
    if bboxes.shape[0] == 0:
        return bboxes, poses
    inverse = [1 / s for s in img_meta['scale_factor']]
    bboxes = scale_boxes(bboxes, inverse)
    poses = FacePoses(poses, img_shape=img_meta['img_shape'][:2]).rescale_(
        inverse, img_meta['ori_shape'][:2], face_model).tensor
    return bboxes, poses


def suppress_duplicates(results: InstanceData, cfg: dict,
                        face_model: FaceModel, img_shape: Tuple[int, int]) -> InstanceData:
    """NMS or pose voting on ``results`` (``bboxes``, ``scores``, ``labels``, ``poses``),
    best first, capped at ``cfg['max_per_img']``.

    With ``pose_voting`` every face NMS keeps takes the score x IoU weighted mean pose of
    the candidates it suppresses (:func:`pose_box_voting`, the kept candidate's score) and
    the box projected from that pose.
    """
    if len(results) == 0:
        return results
    nms_cfg = dict(cfg.get('nms', DEFAULT_NMS))
    voting = cfg.get('pose_voting')
    if voting:
        voted = pose_box_voting(results.bboxes, results.scores, results.poses, results.labels,
                                iou_thr=voting.get('iou_thr', nms_cfg['iou_threshold']),
                                score_mode='max', offset=0)
        poses = voted.poses.to(results.poses.dtype)
        results = InstanceData(bboxes=face_model.pose_to_bbox(poses, img_shape),
                               scores=voted.scores.to(results.scores.dtype),
                               labels=voted.labels, poses=poses)
    else:
        dets, keep = batched_nms(results.bboxes, results.scores, results.labels, nms_cfg)
        results = results[keep]
        results.scores = dets[:, -1].to(results.scores.dtype)   # soft-NMS rescores
    max_per_img = cfg.get('max_per_img', -1)
    if max_per_img is not None and max_per_img > 0:
        results = results[:max_per_img]
    return results


def postprocess_detections(results: InstanceData, cfg: dict, img_meta: dict,
                           face_model: FaceModel, rescale: bool = False,
                           with_nms: bool = True) -> InstanceData:
    """The shared tail of the pose heads' ``predict``: :func:`suppress_duplicates` (unless
    ``with_nms`` is False), then :func:`rescale_detections` when ``rescale``."""
    if with_nms:
        results = suppress_duplicates(results, cfg, face_model, img_meta['img_shape'][:2])
    if rescale and len(results) > 0:
        results.bboxes, results.poses = rescale_detections(
            results.bboxes, results.poses, img_meta, face_model)
    return results


__all__ = ['postprocess_detections', 'rescale_detections', 'suppress_duplicates']

