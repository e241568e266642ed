"""``FacePoses``: global 6DoF face poses that know which are valid and which image they
describe (the pose counterpart of mmdet's ``HorizontalBoxes``; docs/conventions.md, "The
data contract")."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .face_model import FaceModel
from .pnp import pose_from_landmarks
from .pose import flip_pose, scale_translate_map, warp_pose

#: How files (face-pose LMDB records, the original's labels) mark a face without a pose.
POSE_SENTINEL = -9.0

IndexLike = Union[int, slice, Sequence[int], np.ndarray, Tensor]
ArrayLike = Union[Tensor, np.ndarray, Sequence]


def _as_shape(img_shape: Sequence[int]) -> Tuple[int, int]:
    if img_shape is None or len(img_shape) < 2:
        raise ValueError(f'img_shape must be (h, w), got {img_shape!r}')
    return int(img_shape[0]), int(img_shape[1])


def _mean_point_error(points: Tensor, target: Tensor) -> Tensor:
    """Mean distance between point sets ``(N, M, 2)``, in units of the target's size."""
    size = (target.amax(-2) - target.amin(-2)).amax(-1).clamp(min=1e-6)
    return (points - target).norm(dim=-1).mean(-1) / size


class FacePoses:
    """Global face poses ``(N, 6)`` with a validity mask and the image they refer to.

    Args:
        data: ``(N, 6)`` poses (tensor, array or nested sequence).
        valid: ``(N,)`` bool; ``None`` = every row with finite numbers. Rows that are
            not finite are invalid whatever ``valid`` says.
        img_shape: ``(h, w)`` of the image whose camera the poses are relative to.
        dtype, device: of the stored tensor (default: float32 for non-tensor data).
    """

    def __init__(self, data: ArrayLike, valid: Optional[ArrayLike] = None,
                 img_shape: Sequence[int] = (0, 0), dtype: Optional[torch.dtype] = None,
                 device: Union[str, torch.device, None] = None) -> None:
        if not isinstance(data, Tensor):
            data = torch.as_tensor(np.asarray(data, dtype=np.float64),
                                   dtype=dtype or torch.float32)
        tensor = data.to(dtype=dtype, device=device).reshape(-1, 6)
        if not tensor.is_floating_point():
            tensor = tensor.float()
        finite = torch.isfinite(tensor).all(-1)
        if valid is None:
            mask = finite
        else:
            mask = torch.as_tensor(np.asarray(valid) if not isinstance(valid, Tensor) else valid,
                                   device=tensor.device).reshape(-1).bool()
            if len(mask) != len(tensor):
                raise ValueError(f'{len(mask)} validity flags for {len(tensor)} poses')
            mask = mask & finite
        if not mask.all():
            tensor = torch.where(mask[:, None], tensor, tensor.new_tensor(float('nan')))
        self.tensor = tensor
        self.valid = mask
        self.img_shape = _as_shape(img_shape)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_numpy(cls, poses: np.ndarray, img_shape: Sequence[int],
                   valid: Optional[np.ndarray] = None,
                   dtype: torch.dtype = torch.float32) -> FacePoses:
        """Poses read from a file: rows of :data:`POSE_SENTINEL` (or NaN) have no pose."""
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 6)
        has_pose = ~np.all(poses == POSE_SENTINEL, axis=-1)
        if valid is not None:
            has_pose &= np.asarray(valid, dtype=bool).reshape(-1)
        return cls(torch.from_numpy(poses), torch.from_numpy(has_pose), img_shape, dtype=dtype)

    def numpy(self, fill: float = POSE_SENTINEL) -> np.ndarray:
        """``(N, 6)`` float64 array with ``fill`` in the rows without a pose (for files)."""
        out = self.tensor.detach().cpu().double().numpy().copy()
        out[~self.valid.cpu().numpy()] = fill
        return out

    @classmethod
    def empty(cls, img_shape: Sequence[int], dtype: torch.dtype = torch.float32,
              device: Union[str, torch.device, None] = None) -> FacePoses:
        """No poses."""
        return cls(torch.zeros((0, 6), dtype=dtype, device=device), None, img_shape)

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, index: IndexLike) -> FacePoses:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        elif isinstance(index, np.ndarray):
            index = torch.from_numpy(index.astype(np.int64) if index.dtype != bool else index)
        elif isinstance(index, (list, tuple)):
            index = torch.as_tensor(index, dtype=torch.bool if index and isinstance(
                index[0], (bool, np.bool_)) else torch.long)
        if isinstance(index, Tensor):
            index = index.to(self.tensor.device)
        return self._new(self.tensor[index], self.valid[index])

    def _new(self, tensor: Tensor, valid: Tensor,
             img_shape: Optional[Tuple[int, int]] = None) -> FacePoses:
        out = FacePoses.__new__(FacePoses)
        out.tensor, out.valid = tensor, valid
        out.img_shape = self.img_shape if img_shape is None else img_shape
        return out

    @classmethod
    def cat(cls, poses_list: Sequence[FacePoses]) -> FacePoses:
        """Concatenate poses of the same image."""
        if len(poses_list) == 0:
            raise ValueError('cannot concatenate an empty list of FacePoses')
        shapes = {p.img_shape for p in poses_list}
        if len(shapes) > 1:
            raise ValueError(f'cannot concatenate poses of different images: {sorted(shapes)}')
        first = poses_list[0]
        return first._new(torch.cat([p.tensor for p in poses_list]),
                          torch.cat([p.valid for p in poses_list]))

    def to(self, *args: Any, **kwargs: Any) -> FacePoses:
        """Like ``Tensor.to`` (the mask only follows the device)."""
        tensor = self.tensor.to(*args, **kwargs)
        return self._new(tensor, self.valid.to(tensor.device))

    def cpu(self) -> FacePoses:
        return self.to('cpu')

    def cuda(self, *args: Any, **kwargs: Any) -> FacePoses:
        tensor = self.tensor.cuda(*args, **kwargs)
        return self._new(tensor, self.valid.to(tensor.device))

    def clone(self) -> FacePoses:
        return self._new(self.tensor.clone(), self.valid.clone())

    def detach(self) -> FacePoses:
        return self._new(self.tensor.detach(), self.valid)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype

    @property
    def shape(self) -> torch.Size:
        return self.tensor.shape

    @property
    def num_valid(self) -> int:
        """How many faces have a pose."""
        return int(self.valid.sum())

    def __repr__(self) -> str:
        return (f'FacePoses(num={len(self)}, valid={self.num_valid}, img_shape={self.img_shape}, '
                f'dtype={self.dtype}, device={self.device})')

    # ------------------------------------------------------------------ geometry
    def _update_valid(self, fn) -> None:
        """Replace the valid rows by ``fn(float64 valid rows)``."""
        if not self.valid.any():
            return
        new = fn(self.tensor[self.valid].double())
        tensor = self.tensor.clone()
        tensor[self.valid] = new.to(tensor.dtype)
        self.tensor = tensor

    def flip_(self, direction: str = 'horizontal') -> FacePoses:
        """Mirror the image left-right (``u -> w - u``): exact, twice is the identity."""
        if direction != 'horizontal':
            raise ValueError(f'face poses only flip horizontally, got {direction!r}')
        self._update_valid(lambda p: flip_pose(p, self.img_shape))
        return self

    def warp_(self, pixel_map: Union[np.ndarray, Tensor], dst_shape: Sequence[int],
              face_model: Optional[FaceModel] = None, refine: bool = False,
              tolerance: float = 1e-3) -> FacePoses:
        """Follow an affine pixel map (crop, resize, pad, or a combination) into an image of
        ``dst_shape``.

        :func:`~img2pose_mm.structures.warp_pose` is exact when the camera keeps its shape
        (flip, isotropic resize). A crop or pad changes the focal (``w + h``) while the
        pixels stay put, and an anisotropic resize squeezes the view: no rigid pose then
        reproduces the moved face exactly. With ``refine``, faces whose 68 reference
        points land more than ``tolerance`` (mean, in face sizes) off are re-solved by
        EPnP against their moved projections (what labelling the new image would give)
        and the better pose is kept.

        Args:
            pixel_map: ``(3, 3)``: ``[u', v', 1] = pixel_map @ [u, v, 1]``.
            dst_shape: ``(h, w)`` of the image after the map.
            face_model: its rotation method and (for ``refine``) its points;
                default: the packaged face with ``'svd'``.
        """
        face_model = FaceModel.build(face_model)
        src_shape, dst_shape = self.img_shape, _as_shape(dst_shape)

        def move(old: Tensor) -> Tensor:
            pmap = torch.as_tensor(np.asarray(pixel_map, dtype=np.float64)
                                   if not isinstance(pixel_map, Tensor) else pixel_map,
                                   dtype=old.dtype, device=old.device)
            new = warp_pose(old, src_shape, dst_shape, pmap, face_model.rotation_method)
            if not refine:
                return new
            target = face_model.project(old, src_shape) @ pmap[:2, :2].T + pmap[:2, 2]
            err = _mean_point_error(face_model.project(new, dst_shape), target)
            redo = torch.nonzero(err > tolerance).flatten()
            if len(redo):
                refit, solved = pose_from_landmarks(target[redo].cpu().numpy(),
                                                    face_model.points_68.detach().cpu().numpy(),
                                                    dst_shape)
                refit, solved = refit.to(new), solved.to(new.device)
                refit_err = _mean_point_error(
                    face_model.project(torch.nan_to_num(refit), dst_shape), target[redo])
                better = solved & (refit[:, 5] > 0) & (refit_err < err[redo])
                new[redo[better]] = refit[better]
            return new

        self._update_valid(move)
        self.img_shape = dst_shape
        return self

    def rescale_(self, scale_factor: Sequence[float], dst_shape: Sequence[int],
                 face_model: Optional[FaceModel] = None, refine: bool = False) -> FacePoses:
        """Follow a resize by ``scale_factor`` ``(w_scale, h_scale)`` to ``dst_shape``."""
        pixel_map = scale_translate_map((float(scale_factor[0]), float(scale_factor[1])))
        return self.warp_(pixel_map, dst_shape, face_model, refine)

    def translate_(self, offset: Sequence[float], dst_shape: Sequence[int],
                   face_model: Optional[FaceModel] = None, refine: bool = False) -> FacePoses:
        """Follow a crop/pad that moves pixels by ``offset`` ``(dx, dy)`` into ``dst_shape``."""
        pixel_map = scale_translate_map((1., 1.), (float(offset[0]), float(offset[1])))
        return self.warp_(pixel_map, dst_shape, face_model, refine)

    def project(self, face_model: Optional[FaceModel] = None, num_points: int = 68) -> Tensor:
        """Pixels ``(N, M, 2)`` of the reference points (NaN rows without a pose)."""
        face_model = FaceModel.build(face_model)
        out = self.tensor.new_full((len(self), num_points, 2), float('nan'))
        if self.valid.any():
            out[self.valid] = face_model.project(self.tensor[self.valid], self.img_shape,
                                                 num_points).to(out.dtype)
        return out

    def to_bboxes(self, face_model: Optional[FaceModel] = None, clip: bool = True) -> Tensor:
        """Face boxes ``(N, 4)`` by the face model's box rule (NaN rows without a pose)."""
        face_model = FaceModel.build(face_model)
        out = self.tensor.new_full((len(self), 4), float('nan'))
        if self.valid.any():
            out[self.valid] = face_model.pose_to_bbox(
                self.tensor[self.valid].double(), self.img_shape, clip).to(out.dtype)
        return out


__all__ = ['FacePoses', 'POSE_SENTINEL']
