#include "shape_fit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include <opencv2/imgproc.hpp>

namespace kiln::quality {

using data::ShapeKind;

const ShapeGeometry& geometry(ShapeKind s) {
  // 1024 x 1024 samples over the unit square [-1, 1]^2: area error ~1e-3 relative.
  static const std::array<ShapeGeometry, data::kNumShapes> table = [] {
    std::array<ShapeGeometry, data::kNumShapes> t{};
    constexpr int n = 1024;
    for (int k = 0; k < data::kNumShapes; ++k) {
      double count = 0, sy = 0;
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < n; ++i) {
          double x = -1 + (i + 0.5) * 2.0 / n, y = -1 + (j + 0.5) * 2.0 / n;
          if (data::shape_contains(static_cast<ShapeKind>(k), x, y)) count += 1, sy += y;
        }
      t[k].area = count * 4.0 / (double(n) * n);
      t[k].centroid_y = sy / count;
    }
    return t;
  }();
  return table[static_cast<size_t>(s)];
}

double AlphaWindow::sum() const {
  return std::accumulate(alpha.begin(), alpha.end(), 0.0);
}

void AlphaWindow::centroid(double& cx, double& cy) const {
  double s = 0, sx = 0, sy = 0;
  for (int j = 0; j < h; ++j)
    for (int i = 0; i < w; ++i) {
      double a = alpha[static_cast<size_t>(j) * w + i];
      s += a, sx += a * (x0 + i + 0.5), sy += a * (y0 + j + 0.5);
    }
  cx = s > 0 ? sx / s : x0 + w * 0.5;
  cy = s > 0 ? sy / s : y0 + h * 0.5;
}

double soft_iou(const AlphaWindow& mask, ShapeKind s, double cx, double cy, double r, double blur) {
  constexpr int kSub = 4;
  const int pad = static_cast<int>(std::ceil(3 * blur));
  const int bx0 = static_cast<int>(std::floor(cx - r)) - pad,
            by0 = static_cast<int>(std::floor(cy - r)) - pad;
  const int bw = static_cast<int>(std::ceil(cx + r)) + pad - bx0,
            bh = static_cast<int>(std::ceil(cy + r)) + pad - by0;
  cv::Mat1f cover(bh, bw, 0.f);  // (bh, bw) template coverage around the shape
  for (int j = pad; j < bh - pad; ++j)
    for (int i = pad; i < bw - pad; ++i) {
      int in = 0;
      for (int sy = 0; sy < kSub; ++sy) {
        double dy = (by0 + j + (sy + 0.5) / kSub - cy) / r;
        for (int sx = 0; sx < kSub; ++sx) {
          double dx = (bx0 + i + (sx + 0.5) / kSub - cx) / r;
          in += std::abs(dx) <= 1 && std::abs(dy) <= 1 && data::shape_contains(s, dx, dy);
        }
      }
      cover(j, i) = in / float(kSub * kSub);
    }
  if (blur > 0)
    cv::GaussianBlur(cover, cover, cv::Size(2 * pad + 1, 2 * pad + 1), blur, blur,
                     cv::BORDER_CONSTANT);
  double inter = 0, shape_sum = 0;
  for (int j = 0; j < bh; ++j)
    for (int i = 0; i < bw; ++i) {
      double m = cover(j, i);
      if (m <= 0) continue;
      shape_sum += m;
      int mi = bx0 + i - mask.x0, mj = by0 + j - mask.y0;
      if (mi >= 0 && mj >= 0 && mi < mask.w && mj < mask.h)
        inter += std::min(m, double(mask.alpha[static_cast<size_t>(mj) * mask.w + mi]));
    }
  double uni = mask.sum() + shape_sum - inter;
  return uni > 0 ? inter / uni : 0;
}

namespace {

// Template blurs tried after the sharp fit (gaussian sigma, pixels).
constexpr double kBlurs[] = {0.6, 1.0};
// A sharp fit this good needs no blurred templates (exact renders fit at 0.95-0.99).
constexpr double kSharpEnough = 0.93;

// Coordinate descent on (cx, cy, r) from `f`'s start, steps halved three times from 0.5 px and
// 4 % of the radius: enough to absorb a centroid bias of a blurred edge or a clipped mask.
void refine(const AlphaWindow& mask, ShapeFit& f) {
  double step_xy = 0.5, step_r = 0.04;
  for (int level = 0; level < 3; ++level, step_xy *= 0.5, step_r *= 0.5) {
    for (bool improved = true; improved;) {
      improved = false;
      const std::array<std::array<double, 3>, 6> moves = {{{step_xy, 0, 1},
                                                           {-step_xy, 0, 1},
                                                           {0, step_xy, 1},
                                                           {0, -step_xy, 1},
                                                           {0, 0, 1 + step_r},
                                                           {0, 0, 1 - step_r}}};
      for (const auto& m : moves) {
        double cx = f.cx + m[0], cy = f.cy + m[1], r = f.r * m[2];
        double iou = soft_iou(mask, f.shape, cx, cy, r, f.blur);
        if (iou > f.iou + 1e-9) f.cx = cx, f.cy = cy, f.r = r, f.iou = iou, improved = true;
      }
    }
  }
}

}  // namespace

ShapeFit fit_shape(const AlphaWindow& mask) {
  double area = mask.sum(), mx = 0, my = 0;
  mask.centroid(mx, my);
  std::array<ShapeFit, data::kNumShapes> fits;
  for (int k = 0; k < data::kNumShapes; ++k) {
    auto s = static_cast<ShapeKind>(k);
    const ShapeGeometry& g = geometry(s);
    ShapeFit& f = fits[k];
    f.shape = s;
    f.r = std::sqrt(std::max(area, 1.0) / g.area);
    f.cx = mx;
    f.cy = my - g.centroid_y * f.r;
    f.iou = soft_iou(mask, s, f.cx, f.cy, f.r);
  }
  std::sort(fits.begin(), fits.end(),
            [](const ShapeFit& a, const ShapeFit& b) { return a.iou > b.iou; });
  // Top three: geometry refined sharp, then at each template blur (a generated or degraded
  // image's edges are soft; a blurred star is rounder than the sharp one).
  for (int k = 0; k < 3; ++k) refine(mask, fits[k]);
  for (int k = 0; k < 3 && std::max({fits[0].iou, fits[1].iou, fits[2].iou}) < kSharpEnough; ++k) {
    ShapeFit sharp = fits[k];
    for (double blur : kBlurs) {
      ShapeFit f = sharp;
      f.blur = blur;
      f.iou = soft_iou(mask, f.shape, f.cx, f.cy, f.r, blur);
      refine(mask, f);
      if (f.iou > fits[k].iou) fits[k] = f;
    }
  }
  std::sort(fits.begin(), fits.begin() + 3,
            [](const ShapeFit& a, const ShapeFit& b) { return a.iou > b.iou; });
  ShapeFit best = fits[0];
  best.runner_up_iou = fits[1].iou;
  return best;
}

}  // namespace kiln::quality
