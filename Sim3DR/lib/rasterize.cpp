// Sim3DR: z-buffer rasterisation and Phong shading (see rasterize.h).
#include "rasterize.h"

#include <algorithm>
#include <cmath>

namespace sim3dr {

namespace {

// Barycentric tolerance: pixels exactly on a shared edge belong to both
// triangles (the z-test decides), so adjacent triangles leave no gaps.
constexpr double kInsideEps = 1e-7;

inline bool finite3(const float* p) {
  return std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
}

inline bool valid_triangle(const int32_t* tri, int64_t num_vertices) {
  return tri[0] >= 0 && tri[1] >= 0 && tri[2] >= 0 && tri[0] < num_vertices &&
         tri[1] < num_vertices && tri[2] < num_vertices;
}

inline uint8_t to_byte(float value) {
  value = std::min(std::max(value, 0.0f), 255.0f);
  return static_cast<uint8_t>(value + 0.5f);
}

}  // namespace

int64_t rasterize_triangles(const float* vertices, int64_t num_vertices,
                            const int32_t* triangles, int64_t num_triangles,
                            int height, int width, float near_z,
                            float* depth, int32_t* triangle_ids, PixelBox* touched) {
  PixelBox box{width, height, -1, -1};
  int64_t drawn = 0;
  const bool use_near = !std::isnan(near_z);
  const double max_x = width - 1, max_y = height - 1;
  for (int64_t t = 0; t < num_triangles; ++t) {
    const int32_t* tri = triangles + 3 * t;
    if (!valid_triangle(tri, num_vertices)) continue;
    const float* pa = vertices + 3 * static_cast<int64_t>(tri[0]);
    const float* pb = vertices + 3 * static_cast<int64_t>(tri[1]);
    const float* pc = vertices + 3 * static_cast<int64_t>(tri[2]);
    if (!finite3(pa) || !finite3(pb) || !finite3(pc)) continue;
    if (use_near && (pa[2] < near_z || pb[2] < near_z || pc[2] < near_z)) continue;
    const double ax = pa[0], ay = pa[1], az = pa[2];
    const double bx = pb[0], by = pb[1], bz = pb[2];
    const double cx = pc[0], cy = pc[1], cz = pc[2];
    const double area = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay);
    if (!(std::fabs(area) > 1e-12)) continue;

    // Pixel rectangle, clipped to the image in floating point before any cast.
    const double lo_x = std::max(std::min({ax, bx, cx}), 0.0);
    const double hi_x = std::min(std::max({ax, bx, cx}), max_x);
    const double lo_y = std::max(std::min({ay, by, cy}), 0.0);
    const double hi_y = std::min(std::max({ay, by, cy}), max_y);
    if (lo_x > hi_x || lo_y > hi_y) continue;
    const int x0 = static_cast<int>(std::ceil(lo_x)), x1 = static_cast<int>(std::floor(hi_x));
    const int y0 = static_cast<int>(std::ceil(lo_y)), y1 = static_cast<int>(std::floor(hi_y));
    if (x0 > x1 || y0 > y1) continue;

    // Normalised edge functions: l_a is the weight of vertex a, and so on.
    const double inv = 1.0 / area;
    const double da_dx = -(cy - by) * inv, da_dy = (cx - bx) * inv;
    const double db_dx = -(ay - cy) * inv, db_dy = (ax - cx) * inv;
    const double dc_dx = -(by - ay) * inv, dc_dy = (bx - ax) * inv;
    const double row_a = ((cx - bx) * (y0 - by) - (cy - by) * (x0 - bx)) * inv;
    const double row_b = ((ax - cx) * (y0 - cy) - (ay - cy) * (x0 - cx)) * inv;
    const double row_c = ((bx - ax) * (y0 - ay) - (by - ay) * (x0 - ax)) * inv;

    bool won = false;
    for (int y = y0; y <= y1; ++y) {
      const int dy = y - y0;
      double la = row_a + dy * da_dy, lb = row_b + dy * db_dy, lc = row_c + dy * dc_dy;
      float* depth_row = depth + static_cast<int64_t>(y) * width;
      int32_t* id_row = triangle_ids + static_cast<int64_t>(y) * width;
      for (int x = x0; x <= x1; ++x, la += da_dx, lb += db_dx, lc += dc_dx) {
        if (la < -kInsideEps || lb < -kInsideEps || lc < -kInsideEps) continue;
        const float z = static_cast<float>(la * az + lb * bz + lc * cz);
        if (z < depth_row[x]) {
          depth_row[x] = z;
          id_row[x] = static_cast<int32_t>(t);
          won = true;
          box.x0 = std::min(box.x0, x);
          box.x1 = std::max(box.x1, x);
          box.y0 = std::min(box.y0, y);
          box.y1 = std::max(box.y1, y);
        }
      }
    }
    drawn += won;
  }
  if (touched != nullptr) *touched = box;
  return drawn;
}

void shade_pixels(const float* vertices, const float* colors, const float* normals,
                  const int32_t* triangles, int height, int width,
                  const int32_t* triangle_ids, const PixelBox& box,
                  const Shading& shading, uint8_t* image) {
  const int x0 = std::max(box.x0, 0), x1 = std::min(box.x1, width - 1);
  const int y0 = std::max(box.y0, 0), y1 = std::min(box.y1, height - 1);
  const bool lit = shading.enabled != 0 && normals != nullptr;
  const float alpha = std::min(std::max(shading.alpha, 0.0f), 1.0f);
  const float* L = shading.light_dir;
  const float* lc = shading.light_color;
  for (int y = y0; y <= y1; ++y) {
    for (int x = x0; x <= x1; ++x) {
      const int64_t pixel = static_cast<int64_t>(y) * width + x;
      const int32_t t = triangle_ids[pixel];
      if (t < 0) continue;
      const int32_t* tri = triangles + 3 * static_cast<int64_t>(t);
      const float* pa = vertices + 3 * static_cast<int64_t>(tri[0]);
      const float* pb = vertices + 3 * static_cast<int64_t>(tri[1]);
      const float* pc = vertices + 3 * static_cast<int64_t>(tri[2]);
      const double area = (static_cast<double>(pb[0]) - pa[0]) * (static_cast<double>(pc[1]) - pa[1]) -
                          (static_cast<double>(pc[0]) - pa[0]) * (static_cast<double>(pb[1]) - pa[1]);
      double wa = ((static_cast<double>(pc[0]) - pb[0]) * (y - pb[1]) -
                   (static_cast<double>(pc[1]) - pb[1]) * (x - pb[0])) / area;
      double wb = ((static_cast<double>(pa[0]) - pc[0]) * (y - pc[1]) -
                   (static_cast<double>(pa[1]) - pc[1]) * (x - pc[0])) / area;
      wa = std::min(std::max(wa, 0.0), 1.0);
      wb = std::min(std::max(wb, 0.0), 1.0);
      double wc = std::max(1.0 - wa - wb, 0.0);
      const double sum = wa + wb + wc;
      const float fa = static_cast<float>(wa / sum), fb = static_cast<float>(wb / sum),
                  fc = static_cast<float>(wc / sum);

      const float* ca = colors + 3 * static_cast<int64_t>(tri[0]);
      const float* cb = colors + 3 * static_cast<int64_t>(tri[1]);
      const float* cc = colors + 3 * static_cast<int64_t>(tri[2]);
      float rgb[3];
      for (int k = 0; k < 3; ++k) rgb[k] = fa * ca[k] + fb * cb[k] + fc * cc[k];

      if (lit) {
        const float* na = normals + 3 * static_cast<int64_t>(tri[0]);
        const float* nb = normals + 3 * static_cast<int64_t>(tri[1]);
        const float* nc = normals + 3 * static_cast<int64_t>(tri[2]);
        float n[3];
        for (int k = 0; k < 3; ++k) n[k] = fa * na[k] + fb * nb[k] + fc * nc[k];
        const float len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
        if (len > 1e-12f) {
          for (float& v : n) v /= len;
        } else {
          n[0] = 0.f, n[1] = 0.f, n[2] = -1.f;
        }
        // Two-sided lighting: the normal faces the viewer, who looks along +z.
        if (n[2] > 0.f) {
          for (float& v : n) v = -v;
        }
        const float n_dot_l = n[0] * L[0] + n[1] * L[1] + n[2] * L[2];
        const float diffuse = std::max(n_dot_l, 0.0f) * shading.diffuse;
        float specular = 0.f;
        if (n_dot_l > 0.f && shading.specular > 0.f) {
          // reflection r = 2 (n.l) n - l, view vector v = (0, 0, -1)
          const float r_dot_v = -(2.f * n_dot_l * n[2] - L[2]);
          if (r_dot_v > 0.f) specular = shading.specular * std::pow(r_dot_v, shading.shininess);
        }
        for (int k = 0; k < 3; ++k)
          rgb[k] = rgb[k] * (shading.ambient + diffuse * lc[k]) + specular * lc[k];
      }

      uint8_t* out = image + 3 * pixel;
      for (int k = 0; k < 3; ++k)
        out[k] = to_byte(alpha * rgb[k] * 255.f + (1.f - alpha) * out[k]);
    }
  }
}

void vertex_normals(const float* vertices, int64_t num_vertices,
                    const int32_t* triangles, int64_t num_triangles, float* normals) {
  std::fill(normals, normals + 3 * num_vertices, 0.0f);
  for (int64_t t = 0; t < num_triangles; ++t) {
    const int32_t* tri = triangles + 3 * t;
    if (!valid_triangle(tri, num_vertices)) continue;
    const float* pa = vertices + 3 * static_cast<int64_t>(tri[0]);
    const float* pb = vertices + 3 * static_cast<int64_t>(tri[1]);
    const float* pc = vertices + 3 * static_cast<int64_t>(tri[2]);
    const float e1[3] = {pb[0] - pa[0], pb[1] - pa[1], pb[2] - pa[2]};
    const float e2[3] = {pc[0] - pa[0], pc[1] - pa[1], pc[2] - pa[2]};
    // |e1 x e2| is twice the area: summing raw cross products weights by area.
    const float n[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
                        e1[0] * e2[1] - e1[1] * e2[0]};
    if (!std::isfinite(n[0]) || !std::isfinite(n[1]) || !std::isfinite(n[2])) continue;
    for (int corner = 0; corner < 3; ++corner) {
      float* acc = normals + 3 * static_cast<int64_t>(tri[corner]);
      acc[0] += n[0], acc[1] += n[1], acc[2] += n[2];
    }
  }
  for (int64_t v = 0; v < num_vertices; ++v) {
    float* n = normals + 3 * v;
    const float len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    if (len > 0.f) n[0] /= len, n[1] /= len, n[2] /= len;
  }
}

}  // namespace sim3dr
