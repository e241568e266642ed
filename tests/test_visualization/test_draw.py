"""Pure pose-drawing functions: axes and mesh overlays land where the geometry says."""
import numpy as np
import pytest
import torch

from img2pose_mm.structures import (
    load_reference_mesh,
    load_reference_points,
    project_pose_points,
)
from img2pose_mm.visualization import (
    draw_bboxes,
    draw_landmarks,
    draw_pose_axes,
    pose_face_map,
    render_pose_meshes,
)

from .utils import axis_pixel, make_pose

H, W = 200, 300


def test_axes_colours_where_the_projected_axes_are():
    pose = make_pose((0., 50., 0.), (0., 0., 6.))
    image = np.zeros((H, W, 3), np.uint8)
    out = draw_pose_axes(image, pose, thickness=3)
    assert not image.any(), 'copy=True must leave the input alone'
    red = out[axis_pixel(pose, [1., 0., 0.], (H, W))]
    green = out[axis_pixel(pose, [0., -1., 0.], (H, W))]
    blue = out[axis_pixel(pose, [0., 0., -1.], (H, W))]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert green[1] > 200 and green[0] < 60 and green[2] < 60
    assert blue[2] > 200 and blue[0] < 60 and blue[1] < 60


def test_axes_behind_the_camera_are_not_drawn():
    image = np.zeros((H, W, 3), np.uint8)
    out = draw_pose_axes(image, make_pose((0., 0., 0.), (0., 0., -6.)))
    assert not out.any()
    out = draw_pose_axes(image, np.full((1, 6), np.nan))
    assert not out.any()


def test_render_pose_meshes_covers_the_projected_landmarks():
    poses = torch.cat([make_pose((0., 20., 0.), (-1.5, 0., 10.)),
                       make_pose((10., -30., 10.), (1.5, 0.3, 12.))])
    image = np.full((H, W, 3), 128, np.uint8)
    out, face_map = render_pose_meshes(image, poses, alpha=1.0, return_face_map=True)
    landmarks = project_pose_points(torch.as_tensor(load_reference_points(), dtype=torch.float64),
                                    poses, (H, W)).numpy()
    for i, face in enumerate(landmarks):
        # the inner landmarks (brows, nose, eyes, mouth) lie on the face's own mesh
        inner = np.round(face[17:]).astype(int)
        assert (face_map[inner[:, 1], inner[:, 0]] == i).mean() > 0.95
    changed = (out != image).any(-1)
    assert (changed == (face_map >= 0)).mean() > 0.99
    np.testing.assert_array_equal(face_map, pose_face_map(poses, (H, W)))


def test_render_pose_meshes_colours_and_alpha():
    pose = make_pose((0., 0., 0.), (0., 0., 8.))
    image = np.zeros((H, W, 3), np.uint8)
    flat, face_map = render_pose_meshes(image, pose, color=(0, 0, 255), alpha=0.5, shading=False,
                                        return_face_map=True)
    covered = face_map >= 0
    assert covered.sum() > 1000
    assert (np.abs(flat[covered].astype(int) - (0, 0, 127.5)) <= 0.5).all()
    textured = render_pose_meshes(image, pose, color='texture', alpha=1.0, shading=False)
    assert textured[covered].std(0).max() > 10        # real texture, not one colour
    mesh = load_reference_mesh()
    per_vertex = np.broadcast_to(mesh.colors, (1,) + mesh.colors.shape)
    np.testing.assert_array_equal(
        render_pose_meshes(image, pose, color=per_vertex, alpha=1.0, shading=False), textured)
    with pytest.raises(ValueError, match='color'):
        render_pose_meshes(image, pose, color=np.zeros((3, 3), np.uint8))


def test_render_nothing_for_hidden_or_invalid_poses():
    image = np.full((H, W, 3), 50, np.uint8)
    poses = torch.cat([make_pose((0., 0., 0.), (0., 0., -8.)),      # behind the camera
                       make_pose((0., 0., 0.), (30., 0., 8.))])     # far off to the right
    out, face_map = render_pose_meshes(image, poses, return_face_map=True)
    assert (out == image).all() and (face_map == -1).all()
    out = render_pose_meshes(image, np.zeros((0, 6)))
    assert (out == image).all()
    with pytest.raises(ValueError, match=r'\(N, 6\)'):
        render_pose_meshes(image, np.zeros((2, 5)))


def test_boxes_and_landmarks():
    image = np.zeros((H, W, 3), np.uint8)
    out = draw_bboxes(image, [[10, 20, 60, 90]], color=(0, 255, 0), thickness=1, scores=[0.9])
    assert (out[20, 30] == (0, 255, 0)).all() and (out[50, 10] == (0, 255, 0)).all()
    assert not out[50, 30].any()
    out = draw_landmarks(image, [[[100.0, 100.0], [np.nan, 5.0]]], color=(255, 255, 0), radius=2)
    assert (out[100, 100] == (255, 255, 0)).all()


def test_drawing_in_another_camera():
    """With ``intrinsics`` the mesh and axes are projected by that camera: a pose and the
    pose re-expressed in a camera ``K`` draw the face on about the same pixels."""
    from img2pose_mm.structures import change_camera, image_intrinsics
    pose = make_pose((5., 25., -5.), (0.4, 0.2, 8.))
    K = torch.tensor([[380., 0., 170.], [0., 380., 90.], [0., 0., 1.]], dtype=torch.float64)
    in_k = change_camera(pose, image_intrinsics((H, W)), K,
                         torch.as_tensor(load_reference_points(), dtype=torch.float64))
    image = np.zeros((H, W, 3), np.uint8)
    _, here = render_pose_meshes(image, pose, alpha=1.0, return_face_map=True)
    _, there = render_pose_meshes(image, in_k, alpha=1.0, return_face_map=True, intrinsics=K)
    _, default = render_pose_meshes(image, in_k, alpha=1.0, return_face_map=True)
    iou = ((here >= 0) & (there >= 0)).sum() / ((here >= 0) | (there >= 0)).sum()
    wrong = ((here >= 0) & (default >= 0)).sum() / ((here >= 0) | (default >= 0)).sum()
    assert iou > 0.95 and wrong < 0.8
    axes = draw_pose_axes(image, in_k, intrinsics=K, thickness=3)
    origin = np.round(project_pose_points(torch.zeros(1, 3, dtype=torch.float64), pose,
                                          (H, W))[0, 0].numpy()).astype(int)
    assert axes[origin[1] - 2:origin[1] + 3, origin[0] - 2:origin[0] + 3].any()
