"""Sim3DR against analytic truths: coverage, z-buffer, interpolation, Phong, robustness."""
import numpy as np
import pytest

import Sim3DR

H, W = 60, 80


def inside_triangle(tri_xy, margin=0.0):
    """(H, W) bool: pixel centres (integer coords) inside a 2D triangle by ``margin`` px."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    a, b, c = np.asarray(tri_xy, np.float64)
    area = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
    sign = np.sign(area)
    inside = np.ones((H, W), bool)
    for p, q in ((a, b), (b, c), (c, a)):
        edge = ((q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0])) * sign
        inside &= edge / np.hypot(q[0] - p[0], q[1] - p[1]) >= margin
    return inside


def plane_depth(tri):
    """Depth of a triangle's plane at every pixel centre."""
    tri = np.asarray(tri, np.float64)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    m = np.c_[tri[:, :2], np.ones(3)]
    coef = np.linalg.solve(m, tri[:, 2])
    return coef[0] * xs + coef[1] * ys + coef[2]


def test_single_triangle_coverage_matches_geometry():
    tri = np.array([[10.3, 5.7, 1.0], [70.2, 20.1, 1.0], [25.5, 55.4, 1.0]], np.float32)
    raster = Sim3DR.rasterize(tri, [[0, 1, 2]], H, W)
    strict = inside_triangle(tri[:, :2], margin=1e-3)
    loose = inside_triangle(tri[:, :2], margin=-1e-3)
    assert (raster.mask[strict]).all()
    assert not raster.mask[~loose].any()
    np.testing.assert_allclose(raster.depth[raster.mask], 1.0)
    assert (raster.triangle_ids[raster.mask] == 0).all()
    assert np.isinf(raster.depth[~raster.mask]).all()


def test_nearer_triangle_wins_every_overlap_pixel():
    far = [[5, 5, 10.0], [75, 8, 10.0], [30, 55, 10.0]]
    near = [[20, 2, 3.0], [78, 50, 3.0], [8, 40, 3.0]]
    overlap = inside_triangle(np.array(far)[:, :2], 1e-3) & inside_triangle(
        np.array(near)[:, :2], 1e-3)
    assert overlap.sum() > 500
    red, green = (255, 0, 0), (0, 255, 0)
    for order in ((far, near), (near, far)):   # drawing order must not matter
        vertices = np.array(order[0] + order[1], np.float32)
        colors = np.array([red if order[0] is far else green] * 3
                          + [green if order[0] is far else red] * 3, np.uint8)
        image = np.zeros((H, W, 3), np.uint8)
        image, raster = Sim3DR.render(vertices, [[0, 1, 2], [3, 4, 5]], colors, image,
                                      shading=False, return_raster=True)
        assert (image[overlap] == green).all()
        np.testing.assert_allclose(raster.depth[overlap], 3.0)
        near_id = 1 if order[0] is far else 0
        assert (raster.triangle_ids[overlap] == near_id).all()
        only_far = inside_triangle(np.array(far)[:, :2], 1e-3) & ~inside_triangle(
            np.array(near)[:, :2], -1e-3)
        assert only_far.any() and (image[only_far] == red).all()


def test_interpenetrating_triangles_follow_per_pixel_depth():
    a = [[2, 2, 0.0], [78, 2, 10.0], [40, 58, 5.0]]     # depth grows to the right
    b = [[78, 4, 0.0], [2, 4, 10.0], [40, 58, 5.0]]     # depth grows to the left
    vertices = np.array(a + b, np.float32)
    raster = Sim3DR.rasterize(vertices, [[0, 1, 2], [3, 4, 5]], H, W)
    both = inside_triangle(np.array(a)[:, :2], 1e-3) & inside_triangle(np.array(b)[:, :2], 1e-3)
    da, db = plane_depth(a), plane_depth(b)
    clear = both & (np.abs(da - db) > 1e-3)
    expected = np.where(da < db, 0, 1)
    assert clear.sum() > 300
    assert (raster.triangle_ids[clear] == expected[clear]).all()
    np.testing.assert_allclose(raster.depth[clear], np.minimum(da, db)[clear], atol=1e-4)


def test_shared_edge_leaves_no_gap():
    # a square as two triangles: every pixel centre inside the square is covered
    quad = np.array([[10.5, 10.5, 1], [60.5, 10.5, 1], [60.5, 50.5, 1], [10.5, 50.5, 1]],
                    np.float32)
    raster = Sim3DR.rasterize(quad, [[0, 1, 2], [0, 2, 3]], H, W)
    expected = np.zeros((H, W), bool)
    expected[11:51, 11:61] = True
    assert (raster.mask == expected).all()
    # the diagonal x - 10.5 = (y - 10.5) * 50 / 40 never lands on a pixel centre here
    assert set(np.unique(raster.triangle_ids[expected])) == {0, 1}


def test_barycentric_colour_interpolation():
    tri = np.array([[5, 5, 1], [75, 5, 1], [5, 55, 1]], np.float32)
    colors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    image = Sim3DR.render(tri, [[0, 1, 2]], colors, size=(H, W), shading=False)
    for x, y in [(20, 20), (40, 10), (10, 40), (30, 25)]:
        wb = (x - 5) / 70
        wc = (y - 5) / 50
        wa = 1 - wb - wc
        np.testing.assert_allclose(image[y, x], np.array([wa, wb, wc]) * 255, atol=1.0)


def flat_quad(depth=5.0):
    return (np.array([[0, 0, depth], [W - 1, 0, depth], [W - 1, H - 1, depth], [0, H - 1, depth]],
                     np.float32), np.array([[0, 1, 2], [0, 2, 3]]))


@pytest.mark.parametrize('direction,diffuse_term,specular_term', [
    ((0, 0, -1), 1.0, 1.0),          # light from the viewer: full diffuse and highlight
    ((1, 0, 0), 0.0, 0.0),           # grazing light: ambient only
    ((0, 1, -1), 0.5 ** 0.5, 0.5 ** 4),   # 45 deg: cos 45 diffuse, reflection 45 deg off
    ((0, 1, 0), 0.0, 0.0),           # light in the surface plane
])
def test_phong_terms_on_a_flat_surface(direction, diffuse_term, specular_term):
    vertices, triangles = flat_quad()
    gray = 0.5
    light = Sim3DR.Light(direction=direction, ambient=0.2, diffuse=0.5, specular=0.25,
                         shininess=8)
    image = Sim3DR.render(vertices, triangles, (gray, gray, gray), size=(H, W), light=light)
    # specular_term is (r . v) ** shininess, r the reflected light, v the view direction
    expected = gray * (0.2 + 0.5 * diffuse_term) + 0.25 * specular_term
    np.testing.assert_allclose(image[H // 2, W // 2], [expected * 255] * 3, atol=1.0)
    # two-sided: the mirrored winding (normal away from the viewer) shades the same
    flipped = Sim3DR.render(vertices, triangles[:, ::-1], (gray, gray, gray), size=(H, W),
                            light=light)
    np.testing.assert_allclose(flipped, image, atol=1)


def test_alpha_blends_over_background():
    vertices, triangles = flat_quad()
    image = np.full((H, W, 3), 100, np.uint8)
    Sim3DR.render(vertices, triangles, (1.0, 1.0, 1.0), image, shading=False, alpha=0.25)
    np.testing.assert_allclose(image[H // 2, W // 2], [0.25 * 255 + 0.75 * 100] * 3, atol=1)


def test_background_untouched_outside_the_mesh():
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    image = background.copy()
    tri = np.array([[10, 10, 1], [30, 10, 1], [10, 30, 1]], np.float32)
    _, raster = Sim3DR.render(tri, [[0, 1, 2]], (255, 255, 255), image, return_raster=True)
    assert (image[~raster.mask] == background[~raster.mask]).all()
    assert (image[raster.mask] != background[raster.mask]).any()


def test_shared_raster_keeps_occlusion_across_calls():
    vertices, triangles = flat_quad(depth=2.0)
    image = np.zeros((H, W, 3), np.uint8)
    _, raster = Sim3DR.render(vertices, triangles, (0, 255, 0), image, shading=False,
                              return_raster=True)
    behind = flat_quad(depth=9.0)[0]
    Sim3DR.render(behind, triangles, (255, 0, 0), image, shading=False, raster=raster)
    assert (image == (0, 255, 0)).all(-1).all()
    front = flat_quad(depth=1.0)[0]
    Sim3DR.render(front, triangles[:1], (0, 0, 255), image, shading=False, raster=raster)
    upper = inside_triangle(front[[0, 1, 2], :2], 1e-3)
    assert (image[upper] == (0, 0, 255)).all()
    assert (image[~inside_triangle(front[[0, 1, 2], :2], -1e-3)] == (0, 255, 0)).all()


def test_vertex_normals_of_an_octahedron_point_outwards():
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                        np.float32)
    triangles = []
    for x in (0, 1):
        for y in (2, 3):
            for z in (4, 5):
                tri = [x, y, z]
                normal = np.cross(vertices[y] - vertices[x], vertices[z] - vertices[x])
                if normal @ vertices[[x, y, z]].mean(0) < 0:
                    tri = [x, z, y]
                triangles.append(tri)
    normals = Sim3DR.vertex_normals(vertices, triangles)
    np.testing.assert_allclose(normals, vertices, atol=1e-6)


@pytest.mark.parametrize('vertices', [
    [[-500, -500, 1], [-400, -500, 1], [-450, -400, 1]],       # left of the image
    [[1e30, 1e30, 1], [2e30, 1e30, 1], [1e30, 3e30, 1]],       # absurdly far away
    [[10, 10, np.nan], [50, 10, 1], [10, 50, 1]],              # NaN vertex
    [[10, 10, np.inf], [50, 10, 1], [10, 50, 1]],              # inf vertex
    [[10, 10, 1], [50, 50, 1], [30, 30, 1]],                   # degenerate (collinear)
    [[10, 10, -1], [50, 10, 1], [10, 50, 1]],                  # crosses the near plane
])
def test_invisible_or_invalid_triangles_draw_nothing(vertices):
    image = np.zeros((H, W, 3), np.uint8)
    _, raster = Sim3DR.render(np.array(vertices, np.float32), [[0, 1, 2]], (255, 255, 255),
                              image, near=0.0, return_raster=True)
    assert not raster.mask.any()
    assert not image.any()


def test_huge_triangle_is_clipped_to_the_image():
    tri = np.array([[-1e6, -1e6, 1], [1e6, -1e6, 1], [0, 1e6, 1]], np.float32)
    raster = Sim3DR.rasterize(tri, [[0, 1, 2]], H, W)
    assert raster.mask.all()


def test_bad_inputs_raise_clear_errors():
    tri = np.array([[0, 0, 1], [5, 0, 1], [0, 5, 1]], np.float32)
    with pytest.raises(ValueError, match='triangle indices'):
        Sim3DR.render(tri, [[0, 1, 3]], (1, 1, 1), size=(H, W))
    with pytest.raises(ValueError, match='vertices must be'):
        Sim3DR.render(tri[:, :2], [[0, 1, 2]], (1, 1, 1), size=(H, W))
    with pytest.raises(ValueError, match='uint8'):
        Sim3DR.render(tri, [[0, 1, 2]], (1, 1, 1), np.zeros((H, W, 3), np.float32))
    with pytest.raises(ValueError, match='colors'):
        Sim3DR.render(tri, [[0, 1, 2]], np.zeros((2, 3)), size=(H, W))
    with pytest.raises(ValueError, match='raster.depth'):
        Sim3DR.rasterize(tri, [[0, 1, 2]], H, W, raster=Sim3DR.rasterize(tri, [[0, 1, 2]], 5, 5))
    with pytest.raises(ValueError, match='light direction'):
        Sim3DR.render(tri, [[0, 1, 2]], (1, 1, 1), size=(H, W), light=Sim3DR.Light((0, 0, 0)))


def test_empty_mesh_is_a_no_op():
    image = np.full((H, W, 3), 7, np.uint8)
    out, raster = Sim3DR.render(np.zeros((0, 3)), np.zeros((0, 3), int), np.zeros((0, 3)),
                                image, return_raster=True)
    assert out is image and (image == 7).all() and not raster.mask.any()
