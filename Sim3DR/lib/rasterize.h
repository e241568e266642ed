// Sim3DR: a small CPU triangle rasteriser with a z-buffer and Phong shading.
//
// Conventions shared by every function:
//   * vertices are (V, 3) float32, row-major: x, y in pixels (x right, y down,
//     pixel centres at integer coordinates) and a depth z (smaller = nearer);
//   * triangles are (F, 3) int32 indices into the vertices;
//   * images are (H, W, 3) uint8, row-major, channels in the caller's order;
//   * the depth buffer is (H, W) float32 and the triangle-id buffer (H, W) int32
//     (-1 = empty).
// Depth is interpolated linearly in screen space.
#pragma once

#include <cstdint>

namespace sim3dr {

// Inclusive pixel rectangle touched by a rasterisation pass (empty when x0 > x1).
struct PixelBox {
  int x0, y0, x1, y1;
};

// Lighting of the Phong reflection model. Directions are in the vertex frame
// (x right, y down, z away from the viewer); the viewer looks along +z.
struct Shading {
  float light_dir[3];    // unit vector pointing from the surface towards the light
  float light_color[3];  // multiplies the diffuse and specular terms (0..1)
  float ambient;         // ambient weight
  float diffuse;         // diffuse (Lambert) weight
  float specular;        // specular weight
  float shininess;       // specular exponent
  float alpha;           // opacity of the rendered colour over the image (0..1)
  int enabled;           // 0: plain interpolated vertex colours, no lighting
};

// Z-buffer pass. Every triangle whose three vertices are finite and have
// z >= near (a NaN near disables that test) is scan-converted; a pixel takes the
// triangle when its interpolated depth is strictly smaller than depth[pixel].
// Triangles with an out-of-range index or zero area are skipped.
// Returns the number of triangles that won at least one pixel test and writes the
// rectangle of pixels this pass changed into *touched.
int64_t rasterize_triangles(const float* vertices, int64_t num_vertices,
                            const int32_t* triangles, int64_t num_triangles,
                            int height, int width, float near_z,
                            float* depth, int32_t* triangle_ids, PixelBox* touched);

// Shading pass over the pixels inside `box` whose id is >= 0: barycentric
// interpolation of the vertex colours (0..1, (V, 3)) and, when shading is
// enabled, of the vertex normals ((V, 3), may be null when disabled), then the
// Phong model; the result is blended over `image` with `alpha`. Normals facing
// away from the viewer are flipped (two-sided lighting).
void shade_pixels(const float* vertices, const float* colors, const float* normals,
                  const int32_t* triangles, int height, int width,
                  const int32_t* triangle_ids, const PixelBox& box,
                  const Shading& shading, uint8_t* image);

// Area-weighted vertex normals (unit length; zero for unused vertices).
// Triangles with an out-of-range index are ignored.
void vertex_normals(const float* vertices, int64_t num_vertices,
                    const int32_t* triangles, int64_t num_triangles, float* normals);

}  // namespace sim3dr
