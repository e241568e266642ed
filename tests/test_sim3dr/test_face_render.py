"""The reference face rendered by Sim3DR: silhouette vs projected vertices, culling cases."""
import numpy as np
import pytest
import torch

import Sim3DR
from img2pose_mm.structures import (
    euler_to_rotvec,
    image_intrinsics,
    load_reference_mesh,
    project_points,
    transform_points,
)

H, W = 240, 320


def projected_mesh(angles, translation):
    """Pixel-space vertices (x, y, camera depth) of the reference mesh, via structures."""
    mesh = load_reference_mesh()
    rotvec = euler_to_rotvec(torch.tensor([angles], dtype=torch.float64))
    pose = torch.cat([rotvec, torch.tensor([translation], dtype=torch.float64)], 1)
    cam = transform_points(torch.as_tensor(mesh.vertices, dtype=torch.float64), pose)[0]
    pixels = project_points(cam[None], image_intrinsics((H, W), cam))[0]
    return mesh, torch.cat([pixels, cam[:, 2:]], 1).numpy()


@pytest.mark.parametrize('angles,translation', [
    ((0., 0., 0.), (0., 0., 12.)),           # frontal, centred
    ((10., 60., 0.), (0.5, -0.3, 10.)),      # strong yaw
    ((-30., -20., 30.), (-0.8, 0.6, 15.)),   # pitch and roll
    ((0., 30., 0.), (-3.5, 0., 12.)),        # partly off the left edge
    ((20., -45., -15.), (2.2, 1.8, 11.)),    # partly off the bottom-right corner
])
def test_silhouette_box_matches_projected_vertices(angles, translation):
    mesh, vertices = projected_mesh(angles, translation)
    assert (vertices[:, 2] > 0).all()
    image = np.zeros((H, W, 3), np.uint8)
    _, raster = Sim3DR.render(vertices, mesh.triangles, mesh.colors, image, near=1e-3,
                              return_raster=True)
    ys, xs = np.nonzero(raster.mask)
    assert len(xs) > 100
    used = vertices[np.unique(mesh.triangles)]
    lo = np.clip(used[:, :2].min(0), 0, [W - 1, H - 1])
    hi = np.clip(used[:, :2].max(0), 0, [W - 1, H - 1])
    silhouette = np.array([xs.min(), ys.min(), xs.max(), ys.max()])
    np.testing.assert_allclose(silhouette, np.r_[lo, hi], atol=1.0)
    # pixels outside the silhouette are untouched background
    assert not image[~raster.mask].any()
    # the z-buffer keeps the nearest surface: every depth lies within the mesh's depth range
    depth = raster.depth[raster.mask]
    assert depth.min() >= vertices[:, 2].min() - 1e-4
    assert depth.max() <= vertices[:, 2].max() + 1e-4


def test_face_behind_the_camera_renders_nothing():
    mesh, vertices = projected_mesh((0., 0., 0.), (0., 0., -12.))
    assert (vertices[:, 2] < 0).all()
    image = np.zeros((H, W, 3), np.uint8)
    _, raster = Sim3DR.render(vertices, mesh.triangles, mesh.colors, image, near=1e-3,
                              return_raster=True)
    assert not raster.mask.any() and not image.any()


def test_face_crossing_the_camera_plane_keeps_only_its_front_part():
    mesh, vertices = projected_mesh((0., 0., 0.), (0., 0., 0.2))
    image = np.zeros((H, W, 3), np.uint8)
    _, raster = Sim3DR.render(vertices, mesh.triangles, mesh.colors, image, near=1e-3,
                              return_raster=True)
    drawn = np.unique(raster.triangle_ids[raster.mask])
    assert (vertices[mesh.triangles[drawn], 2] >= 1e-3).all()


def test_face_fully_off_image_renders_nothing():
    mesh, vertices = projected_mesh((0., 20., 0.), (40., 0., 12.))
    assert vertices[:, 0].min() > W
    image = np.zeros((H, W, 3), np.uint8)
    _, raster = Sim3DR.render(vertices, mesh.triangles, mesh.colors, image, near=1e-3,
                              return_raster=True)
    assert not raster.mask.any() and not image.any()
