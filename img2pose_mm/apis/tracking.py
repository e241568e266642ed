"""Faces across video frames: IoU tracking and One-Euro smoothing of 6DoF poses
(docs/conventions.md, "Video: track ids and steady poses" and "Tracking").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

from img2pose_mm.structures import (
    box_iou,
    quaternion_multiply,
    quaternion_to_rotvec,
    rotvec_to_quaternion,
)


@dataclass(frozen=True)
class OneEuro:
    """One-Euro settings: ``cutoff = min_cutoff + beta * |speed|`` (Hz), the speed being
    the derivative low-passed at ``d_cutoff`` Hz (radians or pose units per second)."""
    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f'One-Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got '
                             f'{self}')


def smoothing_factor(cutoff: Tensor, dt: Tensor) -> Tensor:
    """Exponential smoothing weight of a first-order low-pass at ``cutoff`` Hz for a
    sampling interval ``dt`` seconds: ``1 / (1 + tau / dt)``, ``tau = 1 / (2 pi cutoff)``."""
    return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))


class PoseFilterState(NamedTuple):
    """Filtered rotations (unit quaternions ``(N, 4)``), translations ``(N, 3)`` and their
    filtered rates of change (``(N, 3)`` rad/s and ``(N, 3)`` units/s)."""
    quat: Tensor
    trans: Tensor
    rot_rate: Tensor
    trans_rate: Tensor

    @classmethod
    def start(cls, poses: Tensor) -> PoseFilterState:
        """The state of tracks that start at ``poses`` ``(N, 6)`` at rest."""
        poses = poses.double()
        return cls(rotvec_to_quaternion(poses[:, :3]), poses[:, 3:].clone(),
                   torch.zeros_like(poses[:, :3]), torch.zeros_like(poses[:, 3:]))

    def poses(self) -> Tensor:
        """The filtered poses ``(N, 6)``."""
        return torch.cat([quaternion_to_rotvec(self.quat), self.trans], -1)

    def index(self, rows) -> PoseFilterState:
        return PoseFilterState(*(t[rows] for t in self))


def one_euro_step(state: PoseFilterState, poses: Tensor, dt: Tensor,
                  rotation: OneEuro = OneEuro(), translation: OneEuro = OneEuro()
                  ) -> PoseFilterState:
    """One One-Euro step for each row: filter the new poses ``(N, 6)`` observed ``dt``
    ``(N,)`` seconds after the previous ones.

    Rotation: ``delta = log(q_new q^-1)`` (the shortest arc, a rotation vector), rate
    ``delta / dt``, cutoff from the norm of the filtered rate, ``q <- exp(a delta) q``.
    Translation: the scalar One-Euro filter on each coordinate.
    """
    poses = poses.double()
    dt = dt.double().reshape(-1, 1)
    quat_inv = state.quat * state.quat.new_tensor([-1., -1., -1., 1.])
    delta = quaternion_to_rotvec(quaternion_multiply(rotvec_to_quaternion(poses[:, :3]),
                                                     quat_inv))
    a_d = smoothing_factor(torch.as_tensor(rotation.d_cutoff, dtype=dt.dtype), dt)
    rot_rate = state.rot_rate + a_d * (delta / dt - state.rot_rate)
    speed = torch.linalg.vector_norm(rot_rate, dim=-1, keepdim=True)
    a_rot = smoothing_factor(rotation.min_cutoff + rotation.beta * speed, dt)
    quat = quaternion_multiply(rotvec_to_quaternion(a_rot * delta), state.quat)
    quat = quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True)

    step = poses[:, 3:] - state.trans
    a_d = smoothing_factor(torch.as_tensor(translation.d_cutoff, dtype=dt.dtype), dt)
    trans_rate = state.trans_rate + a_d * (step / dt - state.trans_rate)
    a_trans = smoothing_factor(translation.min_cutoff + translation.beta * trans_rate.abs(), dt)
    return PoseFilterState(quat, state.trans + a_trans * step, rot_rate, trans_rate)


class TrackUpdate(NamedTuple):
    """Per detection of a frame, in the input order: its track id ``(N,)`` int64 and its
    pose ``(N, 6)`` (smoothed with ``smooth=True``, else as given; ``None`` without
    poses)."""
    ids: Tensor
    poses: Optional[Tensor]


class FaceTracker:
    """IoU tracker of faces over video frames, with optional One-Euro pose smoothing.

    Args:
        iou_threshold: a track and a detection match when the IoU of the track's
            predicted box and the detection box reaches this.
        max_age: frames a track survives without a match.
        smooth: filter each track's pose (:func:`one_euro_step`).
        rotation, translation: the One-Euro settings of the rotation (rad/s) and of each
            translation coordinate (pose units/s).
        fps: frame rate assumed when :meth:`update` gets no timestamp.
        box_momentum: weight of the previous box velocity in its running average.

    Usage: docs/conventions.md, "Tracking".
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 5, smooth: bool = False,
                 rotation: OneEuro = OneEuro(min_cutoff=1.0, beta=0.5),
                 translation: OneEuro = OneEuro(min_cutoff=1.0, beta=0.1),
                 fps: float = 30.0, box_momentum: float = 0.5) -> None:
        if not 0 < iou_threshold <= 1:
            raise ValueError(f'iou_threshold must be in (0, 1], got {iou_threshold}')
        if max_age < 0:
            raise ValueError(f'max_age must be >= 0, got {max_age}')
        if fps <= 0:
            raise ValueError(f'fps must be positive, got {fps}')
        self.iou_threshold = float(iou_threshold)
        self.max_age = int(max_age)
        self.smooth = bool(smooth)
        self.rotation = rotation
        self.translation = translation
        self.fps = float(fps)
        self.box_momentum = float(box_momentum)
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 0."""
        self.next_id = 0
        self.time: Optional[float] = None
        self.ids = torch.zeros(0, dtype=torch.long)
        self.boxes = torch.zeros(0, 4, dtype=torch.float64)
        self.box_rate = torch.zeros(0, 4, dtype=torch.float64)
        self.last_seen = torch.zeros(0, dtype=torch.float64)
        self.misses = torch.zeros(0, dtype=torch.long)
        self.state: Optional[PoseFilterState] = (
            PoseFilterState.start(torch.zeros(0, 6, dtype=torch.float64)) if self.smooth
            else None)

    def __len__(self) -> int:
        return len(self.ids)

    def _keep_tracks(self, rows: Tensor) -> None:
        self.ids, self.boxes, self.box_rate = self.ids[rows], self.boxes[rows], self.box_rate[rows]
        self.last_seen, self.misses = self.last_seen[rows], self.misses[rows]
        if self.state is not None:
            self.state = self.state.index(rows)

    def predicted_boxes(self, timestamp: float) -> Tensor:
        """Each track's box moved by its velocity to ``timestamp``."""
        return self.boxes + self.box_rate * (timestamp - self.last_seen)[:, None]

    def match(self, boxes: Tensor, timestamp: float) -> Tensor:
        """For each detection, the row of its track or -1 (Hungarian assignment on IoU)."""
        rows = torch.full((len(boxes),), -1, dtype=torch.long)
        if len(self) == 0 or len(boxes) == 0:
            return rows
        from scipy.optimize import linear_sum_assignment
        iou = box_iou(self.predicted_boxes(timestamp), boxes).numpy()
        track_rows, det_rows = linear_sum_assignment(-iou)
        good = iou[track_rows, det_rows] >= self.iou_threshold
        rows[torch.as_tensor(det_rows[good])] = torch.as_tensor(track_rows[good])
        return rows

    def update(self, boxes, poses=None, timestamp: Optional[float] = None) -> TrackUpdate:
        """Track the detections of the next frame.

        Args:
            boxes: ``(N, 4)`` face boxes of the frame (``N`` may be 0: a frame without
                faces ages every track).
            poses: ``(N, 6)`` their global poses (required with ``smooth=True``).
            timestamp: the frame's time in seconds (default: the previous one plus
                ``1 / fps``); a gap (dropped frames) is simply a longer step.
        """
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
        if poses is not None:
            poses = torch.as_tensor(np.asarray(poses, dtype=np.float64)).reshape(-1, 6)
            if len(poses) != len(boxes):
                raise ValueError(f'{len(boxes)} boxes but {len(poses)} poses')
        elif self.smooth:
            raise ValueError('smooth=True needs the poses of the detections')
        if timestamp is None:
            timestamp = 0.0 if self.time is None else self.time + 1.0 / self.fps
        timestamp = float(timestamp)
        if self.time is not None and timestamp <= self.time:
            raise ValueError(f'timestamps must increase: {timestamp} after {self.time}')
        self.time = timestamp

        rows = self.match(boxes, timestamp)
        matched = rows >= 0
        det_idx = torch.nonzero(matched).flatten()
        track_rows = rows[matched]
        out_poses = None if poses is None else poses.clone()
        if len(det_idx):
            dt = timestamp - self.last_seen[track_rows]
            rate = (boxes[det_idx] - self.boxes[track_rows]) / dt[:, None]
            self.box_rate[track_rows] = (self.box_momentum * self.box_rate[track_rows]
                                         + (1 - self.box_momentum) * rate)
            self.boxes[track_rows] = boxes[det_idx]
            if self.smooth:
                state = one_euro_step(self.state.index(track_rows), poses[det_idx], dt,
                                      self.rotation, self.translation)
                for mine, new in zip(self.state, state):
                    mine[track_rows] = new
                out_poses[det_idx] = state.poses()
            self.last_seen[track_rows] = timestamp
        seen = torch.zeros(len(self), dtype=torch.bool)
        seen[track_rows] = True
        self.misses = torch.where(seen, torch.zeros_like(self.misses), self.misses + 1)

        new_idx = torch.nonzero(~matched).flatten()
        new_ids = torch.arange(self.next_id, self.next_id + len(new_idx))
        self.next_id += len(new_idx)
        ids = torch.empty(len(boxes), dtype=torch.long)
        ids[det_idx] = self.ids[track_rows]
        ids[new_idx] = new_ids
        self.ids = torch.cat([self.ids, new_ids])
        self.boxes = torch.cat([self.boxes, boxes[new_idx]])
        self.box_rate = torch.cat([self.box_rate, torch.zeros(len(new_idx), 4,
                                                              dtype=torch.float64)])
        self.last_seen = torch.cat([self.last_seen, torch.full((len(new_idx),), timestamp,
                                                               dtype=torch.float64)])
        self.misses = torch.cat([self.misses, torch.zeros(len(new_idx), dtype=torch.long)])
        if self.smooth:
            start = PoseFilterState.start(poses[new_idx])
            self.state = PoseFilterState(*(torch.cat([mine, new])
                                           for mine, new in zip(self.state, start)))
        self._keep_tracks(self.misses <= self.max_age)
        return TrackUpdate(ids, out_poses)


__all__ = ['OneEuro', 'smoothing_factor', 'PoseFilterState', 'one_euro_step', 'TrackUpdate',
           'FaceTracker']
