"""``PoseLocalVisualizer``: mmdet's detection visualiser plus 6DoF face poses."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmengine.structures import InstanceData

import Sim3DR
from img2pose_mm.structures import FacePoses, load_reference_points, project_pose_points

from .draw import AXIS_COLORS, _as_poses, draw_landmarks, draw_pose_axes, render_pose_meshes

Color = Tuple[int, int, int]


@VISUALIZERS.register_module()
class PoseLocalVisualizer(DetLocalVisualizer):
    """Draws boxes, labels/scores, the rendered face mesh and 3D pose axes.

    GT comes from ``data_sample.gt_instances`` and predictions from
    ``data_sample.pred_instances`` (filtered by ``pred_score_thr`` in
    :meth:`add_datasample`); both may carry ``poses`` ``(N, 6)``, global poses of
    the image being drawn (its own ``(h, w)`` gives the camera). That is the case for
    ``tools/test.py --show-dir`` / ``DetVisualizationHook`` (original image,
    predictions rescaled to it, GT loaded after the resize) and for
    ``browse_dataset.py`` (transformed image and GT of the same frame).

    Args:
        draw_mesh: render the face mesh of each pose (semi-transparent).
        draw_axes: draw each pose's axes (x red, y green, z blue).
        mesh_alpha: opacity of the mesh overlay.
        gt_mesh_color / pred_mesh_color: RGB mesh colour of GT / predictions, or
            ``'texture'`` for the reference face's own colours.
        axis_length: axis length in reference-face units.
        axis_thickness: axis line width (default: from the image size).
        axis_colors: RGB colours of the x, y and z axes.
        light: Sim3DR lighting of the mesh.
        draw_landmarks: draw the 68 reference points projected with each pose.
        landmark_color: their RGB colour.
        landmark_points: ``.npy`` file of the 68 reference points (default: the
            packaged face).
        Other arguments are :class:`mmdet.visualization.DetLocalVisualizer`'s.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[Dict]] = None,
                 save_dir: Optional[str] = None,
                 bbox_color: Optional[Union[str, Color]] = None,
                 text_color: Optional[Union[str, Color]] = (200, 200, 200),
                 mask_color: Optional[Union[str, Color]] = None,
                 line_width: Union[int, float] = 2,
                 alpha: float = 0.8,
                 draw_mesh: bool = True,
                 draw_axes: bool = True,
                 mesh_alpha: float = 0.5,
                 gt_mesh_color: Union[str, Color] = (120, 230, 120),
                 pred_mesh_color: Union[str, Color] = (130, 170, 255),
                 axis_length: float = 1.0,
                 axis_thickness: Optional[int] = None,
                 axis_colors: Sequence[Color] = AXIS_COLORS,
                 light: Optional[Dict] = None,
                 draw_landmarks: bool = False,
                 landmark_color: Color = (255, 80, 200),
                 landmark_points: Optional[str] = None) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir,
                         bbox_color=bbox_color, text_color=text_color, mask_color=mask_color,
                         line_width=line_width, alpha=alpha)
        if not 0.0 <= mesh_alpha <= 1.0:
            raise ValueError(f'mesh_alpha must be in [0, 1], got {mesh_alpha}')
        self.draw_mesh = draw_mesh
        self.draw_axes = draw_axes
        self.mesh_alpha = mesh_alpha
        self.gt_mesh_color = gt_mesh_color
        self.pred_mesh_color = pred_mesh_color
        self.axis_length = axis_length
        self.axis_thickness = axis_thickness
        self.axis_colors = tuple(tuple(int(v) for v in c) for c in axis_colors)
        self.light = Sim3DR.Light(**light) if light else Sim3DR.DEFAULT_LIGHT
        self.draw_landmarks = draw_landmarks
        self.landmark_color = tuple(int(v) for v in landmark_color)
        self.landmark_points = (torch.from_numpy(load_reference_points(landmark_points)).double()
                                if draw_landmarks else None)

    def draw_poses(self, image: np.ndarray, poses: Union[np.ndarray, torch.Tensor],
                   mesh_color: Union[str, Color, None] = None) -> np.ndarray:
        """Mesh overlay and axes of ``poses`` ``(N, 6)`` on a copy of ``image`` (RGB)."""
        out = np.ascontiguousarray(image, dtype=np.uint8).copy()
        if poses is None or len(poses) == 0:
            return out
        if self.draw_mesh and self.mesh_alpha > 0:
            color = self.gt_mesh_color if mesh_color is None else mesh_color
            render_pose_meshes(out, poses, color=color, alpha=self.mesh_alpha, light=self.light,
                               copy=False)
        if self.draw_axes:
            draw_pose_axes(out, poses, length=self.axis_length, thickness=self.axis_thickness,
                           colors=self.axis_colors, copy=False)
        if self.draw_landmarks:
            points = project_pose_points(self.landmark_points, _as_poses(poses), out.shape[:2])
            draw_landmarks(out, points.numpy(), color=self.landmark_color,
                           radius=max(1, round(min(out.shape[:2]) / 400)), copy=False)
        return out

    def _draw_instances(self, image: np.ndarray, instances: InstanceData,
                        classes: Optional[List[str]],
                        palette: Optional[List[tuple]]) -> np.ndarray:
        """Poses (mesh, axes) first, then mmdet's boxes and labels on top.

        Instances with ``scores`` are predictions (``pred_mesh_color``), others GT.
        """
        if 'poses' in instances and len(instances) > 0:
            color = self.pred_mesh_color if 'scores' in instances else self.gt_mesh_color
            poses = instances.poses
            if isinstance(poses, FacePoses):     # GT: only the faces that have a pose
                poses = poses.tensor[poses.valid]
            image = self.draw_poses(image, poses, color)
        return super()._draw_instances(image, instances, classes, palette)
