# distutils: language = c++
# cython: boundscheck=False, wraparound=False, cdivision=True
"""Cython binding of the Sim3DR C++ core (``lib/rasterize.cpp``).

Low level: every argument must already have the documented dtype, shape and
C-contiguous layout (``Sim3DR.render`` and friends check and convert). The C++
calls run without the GIL.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t


cdef extern from "rasterize.h" namespace "sim3dr" nogil:
    cdef struct PixelBox:
        int x0, y0, x1, y1

    cdef struct Shading:
        float light_dir[3]
        float light_color[3]
        float ambient
        float diffuse
        float specular
        float shininess
        float alpha
        int enabled

    int64_t c_rasterize "sim3dr::rasterize_triangles"(
        const float* vertices, int64_t num_vertices, const int32_t* triangles,
        int64_t num_triangles, int height, int width, float near_z, float* depth,
        int32_t* triangle_ids, PixelBox* touched)

    void c_shade "sim3dr::shade_pixels"(
        const float* vertices, const float* colors, const float* normals,
        const int32_t* triangles, int height, int width, const int32_t* triangle_ids,
        const PixelBox& box, const Shading& shading, uint8_t* image)

    void c_vertex_normals "sim3dr::vertex_normals"(
        const float* vertices, int64_t num_vertices, const int32_t* triangles,
        int64_t num_triangles, float* normals)


def rasterize(const float[:, ::1] vertices, const int32_t[:, ::1] triangles,
              float[:, ::1] depth, int32_t[:, ::1] triangle_ids, float near_z):
    """Z-buffer pass into ``depth`` (H, W) and ``triangle_ids`` (H, W), in place.

    Returns ``(num_triangles_drawn, (x0, y0, x1, y1))``: the inclusive rectangle of
    changed pixels (``x0 > x1`` when nothing changed).
    """
    if vertices.shape[1] != 3 or triangles.shape[1] != 3:
        raise ValueError('vertices and triangles must have 3 columns')
    if depth.shape[0] != triangle_ids.shape[0] or depth.shape[1] != triangle_ids.shape[1]:
        raise ValueError('depth and triangle_ids must have the same shape')
    cdef PixelBox box
    cdef int64_t drawn
    cdef int height = depth.shape[0], width = depth.shape[1]
    cdef const float* vptr = &vertices[0, 0] if vertices.shape[0] else NULL
    cdef const int32_t* tptr = &triangles[0, 0] if triangles.shape[0] else NULL
    if height == 0 or width == 0 or tptr == NULL or vptr == NULL:
        return 0, (width, height, -1, -1)
    with nogil:
        drawn = c_rasterize(vptr, vertices.shape[0], tptr, triangles.shape[0], height, width,
                            near_z, &depth[0, 0], &triangle_ids[0, 0], &box)
    return drawn, (box.x0, box.y0, box.x1, box.y1)


def shade(const float[:, ::1] vertices, const float[:, ::1] colors, normals,
          const int32_t[:, ::1] triangles, const int32_t[:, ::1] triangle_ids, tuple box,
          uint8_t[:, :, ::1] image, light_dir, light_color, float ambient, float diffuse,
          float specular, float shininess, float alpha, bint enabled):
    """Shading pass: colour the pixels of ``box`` whose triangle id is set, in place."""
    cdef int height = image.shape[0], width = image.shape[1]
    if image.shape[2] != 3:
        raise ValueError('image must be (H, W, 3)')
    if triangle_ids.shape[0] != height or triangle_ids.shape[1] != width:
        raise ValueError('triangle_ids must match the image size')
    if colors.shape[0] != vertices.shape[0] or colors.shape[1] != 3:
        raise ValueError('colors must be (V, 3) like the vertices')
    cdef const float[:, ::1] normals_view
    cdef const float* nptr = NULL
    if normals is not None:
        normals_view = normals
        if normals_view.shape[0] != vertices.shape[0] or normals_view.shape[1] != 3:
            raise ValueError('normals must be (V, 3) like the vertices')
        if normals_view.shape[0]:
            nptr = &normals_view[0, 0]
    cdef PixelBox pbox
    pbox.x0, pbox.y0, pbox.x1, pbox.y1 = box
    if pbox.x0 > pbox.x1 or pbox.y0 > pbox.y1 or height == 0 or width == 0:
        return
    cdef Shading s
    cdef int k
    for k in range(3):
        s.light_dir[k] = light_dir[k]
        s.light_color[k] = light_color[k]
    s.ambient = ambient
    s.diffuse = diffuse
    s.specular = specular
    s.shininess = shininess
    s.alpha = alpha
    s.enabled = enabled
    with nogil:
        c_shade(&vertices[0, 0], &colors[0, 0], nptr, &triangles[0, 0], height, width,
                &triangle_ids[0, 0], pbox, s, &image[0, 0, 0])


def vertex_normals(const float[:, ::1] vertices, const int32_t[:, ::1] triangles,
                   float[:, ::1] normals):
    """Area-weighted unit vertex normals written into ``normals`` (V, 3)."""
    if normals.shape[0] != vertices.shape[0]:
        raise ValueError('normals must be (V, 3) like the vertices')
    if vertices.shape[0] == 0:
        return
    cdef const int32_t* tptr = &triangles[0, 0] if triangles.shape[0] else NULL
    if tptr == NULL:
        normals[:, :] = 0
        return
    with nogil:
        c_vertex_normals(&vertices[0, 0], vertices.shape[0], tptr, triangles.shape[0],
                         &normals[0, 0])
