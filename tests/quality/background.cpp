#include "background.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <opencv2/imgproc.hpp>

namespace kiln::quality {

using data::BackgroundKind;

namespace {

constexpr int kBands = 8;  // as in scenes.cpp: stripes / checker periods across the image

// Weight of B in the background of each pixel, 4x4 supersampled at data::render's sample points.
std::vector<float> weight_map(BackgroundKind kind, int w, int h) {
  constexpr int kSub = 4;
  std::vector<float> out(static_cast<size_t>(w) * h);
  for (int py = 0; py < h; ++py)
    for (int px = 0; px < w; ++px) {
      double sum = 0;
      for (int sy = 0; sy < kSub; ++sy)
        for (int sx = 0; sx < kSub; ++sx) {
          double x = (px + (sx + 0.5) / kSub) / w, y = (py + (sy + 0.5) / kSub) / h;
          int bx = static_cast<int>(std::floor(x * kBands)),
              by = static_cast<int>(std::floor(y * kBands));
          switch (kind) {
            case BackgroundKind::plain:
              break;
            case BackgroundKind::vertical_gradient:
              sum += y;
              break;
            case BackgroundKind::horizontal_gradient:
              sum += x;
              break;
            case BackgroundKind::stripes:
              sum += by % 2;
              break;
            case BackgroundKind::checker:
              sum += (bx + by) % 2;
              break;
          }
        }
      out[static_cast<size_t>(py) * w + px] = static_cast<float>(sum / (kSub * kSub));
    }
  return out;
}

float dist2(Rgbf a, Rgbf b) {
  Rgbf d = a - b;
  return dot(d, d);
}

// Least-squares A, B of p = (1 - w) A + w B over the pixels within kInlier of the current model
// (per channel, a 2x2 normal system; plain or a degenerate weight map fits A alone).
void refine_colors(const std::vector<Rgbf>& px, BackgroundFit& f) {
  double s00 = 0, s01 = 0, s11 = 0;
  std::array<double, 3> r0{}, r1{};
  size_t inliers = 0;
  for (size_t i = 0; i < px.size(); ++i) {
    if (dist2(px[i], f.predict(static_cast<int>(i))) > kInlier * kInlier) continue;
    double w = f.weight[i], u = 1 - w;
    const float c[3] = {px[i].r, px[i].g, px[i].b};
    s00 += u * u, s01 += u * w, s11 += w * w;
    for (int k = 0; k < 3; ++k) r0[k] += u * c[k], r1[k] += w * c[k];
    ++inliers;
  }
  if (inliers == 0) return;
  double det = s00 * s11 - s01 * s01;
  std::array<double, 3> a{}, b{};
  if (f.background.kind == BackgroundKind::plain || det < 1e-6 * s00 * s11 + 1e-12) {
    for (int k = 0; k < 3; ++k) a[k] = r0[k] / s00;
    b = a;
  } else {
    for (int k = 0; k < 3; ++k) {
      a[k] = (s11 * r0[k] - s01 * r1[k]) / det;
      b[k] = (s00 * r1[k] - s01 * r0[k]) / det;
    }
  }
  f.a = {float(a[0]), float(a[1]), float(a[2])};
  f.b = {float(b[0]), float(b[1]), float(b[2])};
}

}  // namespace

float BackgroundFit::distance(Rgbf p, int i) const {
  switch (background.kind) {
    case BackgroundKind::plain:
      return std::sqrt(dist2(p, a));
    case BackgroundKind::vertical_gradient:
    case BackgroundKind::horizontal_gradient: {
      Rgbf ab = b - a;
      float t = std::clamp(dot(p - a, ab) / std::max(dot(ab, ab), 1e-6f), 0.f, 1.f);
      return std::sqrt(dist2(p, a + t * ab));
    }
    default:
      return std::sqrt(std::min({dist2(p, predict(i)), dist2(p, a), dist2(p, b)}));
  }
}

BackgroundFit fit_background(const std::vector<Rgbf>& px, int w, int h) {
  std::array<std::vector<float>, data::kNumBackgroundKinds> maps;
  for (int k = 0; k < data::kNumBackgroundKinds; ++k)
    maps[k] = weight_map(static_cast<BackgroundKind>(k), w, h);
  std::array<Rgbf, data::kNumColors> pal;
  for (int c = 0; c < data::kNumColors; ++c)
    pal[c] = to_rgbf(data::palette(static_cast<data::Color>(c)));

  // Score on at most ~4096 pixels (every pixel at 64x64).
  const size_t n = px.size(), stride = std::max<size_t>(1, n / 4096);
  const float cap = kInlier * kInlier;
  double best_cost = std::numeric_limits<double>::infinity();
  BackgroundFit best;
  for (int k = 0; k < data::kNumBackgroundKinds; ++k) {
    const auto& wm = maps[k];
    for (int a = 0; a < data::kNumColors; ++a)
      for (int b = 0; b < data::kNumColors; ++b) {
        if ((k == 0) != (a == b)) continue;  // plain has one color, the others two different
        double cost = 0;
        Rgbf pa = pal[a], ab = pal[b] - pal[a];
        for (size_t i = 0; i < n && cost < best_cost; i += stride)
          cost += std::min(dist2(px[i], pa + wm[i] * ab), cap);
        if (cost < best_cost) {
          best_cost = cost;
          best.background = {static_cast<BackgroundKind>(k), static_cast<data::Color>(a),
                             static_cast<data::Color>(b)};
        }
      }
  }
  best.w = w, best.h = h;
  best.weight = maps[static_cast<int>(best.background.kind)];
  best.a = pal[static_cast<int>(best.background.a)];
  best.b = pal[static_cast<int>(best.background.b)];
  for (int iter = 0; iter < 2; ++iter) refine_colors(px, best);
  // Band edges of a generated (or degraded) image are soft: pick the blur of the weight map
  // that fits best, then re-measure the colors with it.
  if (best.background.kind == BackgroundKind::stripes ||
      best.background.kind == BackgroundKind::checker) {
    const std::vector<float> sharp = best.weight;
    double best_blur_cost = std::numeric_limits<double>::infinity();
    for (double sigma : {0.0, 0.4, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2}) {
      BackgroundFit trial = best;
      if (sigma > 0) {
        cv::Mat src(h, w, CV_32F, const_cast<float*>(sharp.data())), dst;
        cv::GaussianBlur(src, dst, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT);
        trial.weight.assign(dst.ptr<float>(), dst.ptr<float>() + sharp.size());
      }
      double cost = 0;
      for (size_t i = 0; i < n; ++i)
        cost += std::min(dist2(px[i], trial.predict(static_cast<int>(i))), cap);
      if (cost < best_blur_cost)
        best_blur_cost = cost, best.weight = trial.weight, best.edge_blur = sigma;
    }
    refine_colors(px, best);
  }
  size_t inliers = 0;
  for (size_t i = 0; i < n; ++i) inliers += dist2(px[i], best.predict(static_cast<int>(i))) <= cap;
  best.inlier_fraction = double(inliers) / double(n);
  return best;
}

}  // namespace kiln::quality
