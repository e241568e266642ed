"""Geometric transforms that keep ``gt_poses`` and ``gt_landmarks`` right (the invariant
they keep: docs/conventions.md, "The data contract")."""
from __future__ import annotations

import logging
from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.datasets.transforms import RandomFlip, Resize
from mmdet.registry import TRANSFORMS
from mmengine.logging import print_log

from img2pose_mm.structures import FaceModel, FaceModelLike, mirror_permutation, scale_translate_map

from .pose_utils import (
    boxes_numpy,
    follow_pad,
    image_hw,
    landmark_valid_mask,
    map_landmarks,
    num_instances,
    pose_valid_mask,
    record_homography,
    select_instances,
    set_boxes,
)


class _PoseAware:
    """The face model the poses are moved with, and mmdet's ``Pad`` caught up on."""

    def _init_pose(self, face_model: FaceModelLike, refine_poses: bool) -> None:
        self.face_model = FaceModel.build(face_model)
        self.refine_poses = refine_poses

    def _sync(self, results: dict) -> None:
        follow_pad(results, self.face_model, self.refine_poses)

    def _move_poses(self, results: dict, pixel_map: np.ndarray) -> None:
        """Update ``gt_poses``/``gt_landmarks`` after the image went through ``pixel_map``."""
        if results.get('gt_landmarks') is not None:
            results['gt_landmarks'] = map_landmarks(results['gt_landmarks'], pixel_map)
        if results.get('gt_poses') is not None:
            results['gt_poses'].warp_(pixel_map, image_hw(results), self.face_model,
                                      self.refine_poses)


@TRANSFORMS.register_module()
class PoseRandomFlip(_PoseAware, RandomFlip):
    """Horizontal flip of image, boxes, landmarks (left/right points swapped with
    :func:`~img2pose_mm.structures.mirror_permutation`) and poses
    (:func:`~img2pose_mm.structures.flip_pose`, exact).

    Required Keys: ``img``; optional ``gt_bboxes``, ``gt_landmarks``, ``gt_poses``.
    Modified Keys: ``img``, ``gt_bboxes``, ``gt_landmarks``, ``gt_poses``.
    Added Keys: ``flip``, ``flip_direction``, ``homography_matrix``.

    Args:
        prob: flip probability.
        direction: only ``'horizontal'`` (a face pose has no vertical mirror).
        face_model: the face model (used if mmdet's ``Pad`` ran before).
    """

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal',
                 face_model: FaceModelLike = None) -> None:
        if direction != 'horizontal':
            raise ValueError(f'PoseRandomFlip only flips horizontally, got {direction!r}')
        RandomFlip.__init__(self, prob=prob, direction=direction)
        self._init_pose(face_model, True)

    def _flip(self, results: dict) -> None:
        RandomFlip._flip(self, results)
        h, w = image_hw(results)
        if results.get('gt_landmarks') is not None:
            lm = results['gt_landmarks']
            valid = landmark_valid_mask(lm)
            flipped = lm.copy()
            if valid.any():
                mirrored = lm[valid][:, mirror_permutation(lm.shape[1])]
                mirrored[..., 0] = w - mirrored[..., 0]
                flipped[valid] = mirrored
            results['gt_landmarks'] = flipped
        if results.get('gt_poses') is not None:
            results['gt_poses'].flip_()

    def transform(self, results: dict) -> dict:
        """Flip with probability ``prob``."""
        self._sync(results)
        return RandomFlip.transform(self, results)


@TRANSFORMS.register_module()
class PoseResize(_PoseAware, Resize):
    """mmdet's ``Resize`` that also maps ``gt_landmarks`` and ``gt_poses``.

    Poses follow the actual ``scale_factor`` ``(w_scale, h_scale)`` (which differ slightly
    even with ``keep_ratio`` because sizes are rounded, and a lot with ``keep_ratio=False``)
    through :func:`~img2pose_mm.structures.warp_pose`; an isotropic resize is exact. The
    image camera has square pixels, so an anisotropic resize can only be approximated
    (EPnP-refined, about ``|w_scale / h_scale - 1| / 2`` of the face size at the face's
    edges; a warning is logged above :attr:`ANISOTROPY_WARNING`).

    Args:
        face_model: the face model (default: the packaged face).
        refine_poses: EPnP-refine poses the closed form leaves off (anisotropic scale);
            see :meth:`~img2pose_mm.structures.FacePoses.warp_`.
        **kwargs: mmdet ``Resize`` arguments (``scale``, ``scale_factor``,
            ``keep_ratio``, ``clip_object_border``, ``backend``, ``interpolation``).
    """

    #: ``|w_scale / h_scale - 1|`` above which a warning says poses are approximate.
    ANISOTROPY_WARNING = 0.02

    def __init__(self, *args, face_model: FaceModelLike = None,
                 refine_poses: bool = True, **kwargs) -> None:
        Resize.__init__(self, *args, **kwargs)
        self._init_pose(face_model, refine_poses)
        self._warned = False

    def transform(self, results: dict) -> dict:
        """Resize image, boxes, landmarks and poses."""
        self._sync(results)
        results = Resize.transform(self, results)
        w_scale, h_scale = results['scale_factor']
        if (results.get('gt_poses') is not None and not self._warned
                and abs(w_scale / h_scale - 1) > self.ANISOTROPY_WARNING):
            self._warned = True
            print_log(f'{self.__class__.__name__}: w_scale / h_scale = {w_scale / h_scale:.3f}; '
                      'the image camera has square pixels, so no pose reproduces an '
                      'anisotropic resize exactly (expect reference-point errors of about '
                      f'{abs(w_scale / h_scale - 1) / 2:.1%} of the face size); prefer '
                      'keep_ratio=True', logger='current', level=logging.WARNING)
        pixel_map = scale_translate_map((float(w_scale), float(h_scale))).numpy()
        self._move_poses(results, pixel_map)
        return results


@TRANSFORMS.register_module()
class PoseMultiScaleResize(PoseResize):
    """img2pose's multi-scale resize: short side ``min_size`` (picked at random from a
    list) unless the long side would pass ``max_size``; keeps the aspect ratio.

    Args:
        min_size: short-side length or candidates (e.g. ``(640, 672, 704, 736, 768, 800)``).
        max_size: long-side cap (1400).
        **kwargs: :class:`PoseResize` arguments other than ``scale``/``keep_ratio``.
    """

    def __init__(self, min_size: Union[int, Sequence[int]] = (640, 672, 704, 736, 768, 800),
                 max_size: int = 1400, **kwargs) -> None:
        self.min_sizes = (int(min_size),) if np.isscalar(min_size) else tuple(
            int(s) for s in min_size)
        if not self.min_sizes:
            raise ValueError('min_size must not be empty')
        self.max_size = int(max_size)
        super().__init__(scale=(self.max_size, self.min_sizes[0]), keep_ratio=True, **kwargs)

    @cache_randomness
    def _choose_min_size(self) -> int:
        return self.min_sizes[np.random.randint(len(self.min_sizes))]

    def transform(self, results: dict) -> dict:
        """Resize to a randomly chosen scale."""
        self.scale = (self.max_size, self._choose_min_size())
        return super().transform(results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_sizes}, '
                f'max_size={self.max_size}, interpolation={self.interpolation})')


@TRANSFORMS.register_module()
class PoseRandomCrop(_PoseAware, BaseTransform):
    """Random crop of ``scale`` x the image size, ``scale ~ U(scale_range)``, placed
    anywhere in the image.

    Faces whose box centre and usable landmarks all stay inside the crop are kept.
    Faces the crop cuts (still partly visible, but not kept) become ignored instances
    (``gt_ignore_flags``, ``cut_faces='ignore'``, the default) so that the detector is
    not taught that a visible face is background; ``cut_faces='drop'`` removes them
    as the original img2pose does. If no face with a pose (or, without any pose, no
    face at all) would be kept, another crop is drawn, up to ``max_attempts``; then the
    image is left as it is. Poses move to the crop's camera with
    :func:`~img2pose_mm.structures.warp_pose` (a translation) refined by EPnP where the
    focal change leaves them off (``refine_poses``).

    Required Keys: ``img``; optional ``gt_bboxes``, ``gt_landmarks``, ``gt_poses``, ...
    Modified Keys: ``img``, ``img_shape`` and every GT instance key.
    Added Keys: ``homography_matrix``.
    """

    def __init__(self, scale_range: Tuple[float, float] = (0.7, 1.0), max_attempts: int = 10,
                 face_model: FaceModelLike = None, refine_poses: bool = True,
                 cut_faces: str = 'ignore') -> None:
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi <= 1:
            raise ValueError(f'scale_range must satisfy 0 < low <= high <= 1, got {scale_range}')
        if cut_faces not in ('ignore', 'drop'):
            raise ValueError(f"cut_faces must be 'ignore' or 'drop', got {cut_faces!r}")
        self.cut_faces = cut_faces
        self.scale_range = (lo, hi)
        self.max_attempts = int(max_attempts)
        self._init_pose(face_model, refine_poses)

    @cache_randomness
    def _random_window(self, h: int, w: int) -> Tuple[int, int, int, int]:
        scale = np.random.uniform(*self.scale_range)
        ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
        y0 = np.random.randint(0, h - ch + 1)
        x0 = np.random.randint(0, w - cw + 1)
        return x0, y0, cw, ch

    @staticmethod
    def _kept(results: dict, window: Tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, cw, ch = window
        n = num_instances(results)
        keep = np.ones(n, dtype=bool)
        if results.get('gt_bboxes') is not None:
            boxes = boxes_numpy(results['gt_bboxes'])
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            keep &= (cx >= x0) & (cx <= x0 + cw) & (cy >= y0) & (cy <= y0 + ch)
        if results.get('gt_landmarks') is not None and n:
            lm = results['gt_landmarks']
            inside = ((lm[..., 0] >= x0) & (lm[..., 0] <= x0 + cw)
                      & (lm[..., 1] >= y0) & (lm[..., 1] <= y0 + ch)).all(-1)
            keep &= inside | ~landmark_valid_mask(lm)
        return keep

    def transform(self, results: dict) -> dict:
        """Crop image and annotations."""
        self._sync(results)
        h, w = image_hw(results)
        n = num_instances(results)
        wanted = pose_valid_mask(results)
        if not wanted.any():
            wanted = np.ones(n, dtype=bool)
        for _ in range(max(1, self.max_attempts)):
            window = self._random_window(h, w)
            keep = self._kept(results, window)
            if n == 0 or (keep & wanted).any():
                self._crop(results, window, keep)
                return results
        return results

    def _crop(self, results: dict, window: Tuple[int, int, int, int], keep: np.ndarray) -> None:
        x0, y0, cw, ch = window
        results['img'] = np.ascontiguousarray(results['img'][y0:y0 + ch, x0:x0 + cw])
        results['img_shape'] = (ch, cw)
        pixel_map = scale_translate_map((1., 1.), (-float(x0), -float(y0))).numpy()
        if self.cut_faces == 'ignore' and results.get('gt_bboxes') is not None and len(keep):
            boxes = boxes_numpy(results['gt_bboxes'])
            visible = ((np.minimum(boxes[:, 2], x0 + cw) > np.maximum(boxes[:, 0], x0))
                       & (np.minimum(boxes[:, 3], y0 + ch) > np.maximum(boxes[:, 1], y0)))
            cut = visible & ~keep
            flags = results.get('gt_ignore_flags')
            flags = np.zeros(len(keep), dtype=bool) if flags is None else flags.copy()
            results['gt_ignore_flags'] = flags | cut
            keep = keep | cut
        select_instances(results, keep)
        if results.get('gt_bboxes') is not None:
            boxes = boxes_numpy(results['gt_bboxes']) - [x0, y0, x0, y0]
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, cw)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, ch)
            set_boxes(results, boxes)
        self._move_poses(results, pixel_map)
        record_homography(results, pixel_map)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale_range={self.scale_range}, '
                f'max_attempts={self.max_attempts}, refine_poses={self.refine_poses}, '
                f'cut_faces={self.cut_faces!r})')


__all__ = ['PoseRandomFlip', 'PoseResize', 'PoseMultiScaleResize', 'PoseRandomCrop']
