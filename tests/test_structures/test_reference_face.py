"""The packaged reference face: symmetric, frontal, complete; the original's files load."""
import numpy as np
import pytest

from img2pose_mm.structures import (
    IBUG_68_MIRROR_PAIRS,
    five_from_68,
    load_reference_mesh,
    load_reference_points,
    mirror_permutation,
)


def test_points_shapes_and_extent():
    p68 = load_reference_points()
    p5 = load_reference_points(num_points=5)
    assert p68.shape == (68, 3) and p5.shape == (5, 3)
    assert p68.dtype == np.float32
    assert 0.8 < np.abs(p68[:, :2]).max() <= 1.0 + 1e-6
    np.testing.assert_allclose(p5, five_from_68(p68), atol=1e-6)


def test_symmetric():
    p = load_reference_points().astype(np.float64)
    iod = np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0))
    mirrored = p * [-1, 1, 1]
    for a, b in IBUG_68_MIRROR_PAIRS:
        assert np.linalg.norm(mirrored[a] - p[b]) < 0.02 * iod, (a, b)
    np.testing.assert_array_equal(mirror_permutation(68)[mirror_permutation(68)], np.arange(68))


def test_frontal():
    p = load_reference_points().astype(np.float64)
    left_eye, right_eye = p[36:42].mean(0), p[42:48].mean(0)
    eye_line = right_eye - left_eye
    assert eye_line[0] > 0                                      # subject's right eye on the left
    assert abs(eye_line[1]) < 1e-3 * np.linalg.norm(eye_line)   # level
    assert abs(eye_line[2]) < 1e-3 * np.linalg.norm(eye_line)   # square to the camera
    assert int(np.argmin(p[:, 2])) == 30                        # nose tip nearest the camera
    assert p[8, 1] > p[30, 1] > p[27, 1]                        # chin below nose below brows (y down)


def test_mesh_loads_and_matches_points():
    mesh = load_reference_mesh()
    assert mesh.vertices.shape[1] == 3 and mesh.triangles.shape[1] == 3
    assert len(mesh.vertices) > 5000 and len(mesh.triangles) > 10000
    assert mesh.colors.dtype == np.uint8 and mesh.colors.shape == mesh.vertices.shape
    assert mesh.colors.mean() > 40                              # textured, not black
    p = load_reference_points()
    # every landmark lies on (near) the surface of the mesh
    dist = np.linalg.norm(mesh.vertices[None] - p[:, None], axis=-1).min(1)
    assert np.median(dist) < 0.02 and dist.max() < 0.1


def test_original_reference_files_load(tmp_path):
    pts = np.random.default_rng(0).normal(size=(68, 3))
    path = tmp_path / 'reference_3d_68_points_trans.npy'
    np.save(path, pts)
    np.testing.assert_allclose(load_reference_points(path), pts.astype(np.float32))
    with pytest.raises(ValueError, match=r'\(5, 3\)'):
        load_reference_points(path, num_points=5)
    with pytest.raises(FileNotFoundError, match='not found'):
        load_reference_points(tmp_path / 'missing.npy')
