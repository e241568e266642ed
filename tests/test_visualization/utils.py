"""Helpers shared by the visualisation tests."""
from typing import Sequence, Tuple

import torch

from img2pose_mm.structures import euler_to_rotvec, project_pose_points


def make_pose(angles: Sequence[float], translation: Sequence[float]) -> torch.Tensor:
    """``(1, 6)`` float64 pose from Euler angles (degrees) and a translation."""
    rotvec = euler_to_rotvec(torch.tensor([angles], dtype=torch.float64))
    return torch.cat([rotvec, torch.tensor([translation], dtype=torch.float64)], 1)


def axis_pixel(pose: torch.Tensor, axis_point: Sequence[float], img_shape: Tuple[int, int],
               frac: float = 0.6) -> Tuple[int, int]:
    """``(row, col)`` at ``frac`` along the projected segment origin -> ``axis_point``."""
    pts = torch.tensor([[0., 0., 0.], axis_point], dtype=torch.float64)
    uv = project_pose_points(pts, pose, img_shape)[0].numpy()
    x, y = uv[0] + frac * (uv[1] - uv[0])
    return int(round(y)), int(round(x))
