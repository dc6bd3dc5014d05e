// Background model of a scene image (internal to the reader, exposed for its tests).
//
// Every background kind of data::background_at is "color A blended towards color B by a weight
// w(x, y)" with a kind-specific weight map: 0 (plain), y (vertical gradient), x (horizontal),
// stripe / checker coverage. The fit tries every kind and palette pair (451 hypotheses), scores
// each by a truncated quadratic cost (so the objects, a minority of pixels, cannot pull it), then
// re-estimates A and B by least squares on the inliers, which absorbs a global color shift of a
// generated image.
#pragma once

#include <vector>

#include "scenes.hpp"

namespace kiln::quality {

struct Rgbf {
  float r = 0, g = 0, b = 0;
};
inline Rgbf operator-(Rgbf a, Rgbf b) {
  return {a.r - b.r, a.g - b.g, a.b - b.b};
}
inline Rgbf operator+(Rgbf a, Rgbf b) {
  return {a.r + b.r, a.g + b.g, a.b + b.b};
}
inline Rgbf operator*(float t, Rgbf a) {
  return {t * a.r, t * a.g, t * a.b};
}
inline float dot(Rgbf a, Rgbf b) {
  return a.r * b.r + a.g * b.g + a.b * b.b;
}
inline Rgbf to_rgbf(data::Rgb c) {
  return {float(c.r), float(c.g), float(c.b)};
}

struct BackgroundFit {
  data::Background background;  // the best hypothesis (palette colors)
  Rgbf a, b;                    // colors measured on the inliers
  std::vector<float> weight;    // (h, w): how much of B each pixel's background has
  double edge_blur = 0;         // gaussian sigma (px) of the band edges, measured
  double inlier_fraction = 0;   // pixels within kInlier of the refined model
  int w = 0, h = 0;

  Rgbf predict(int i) const { return a + weight[i] * (b - a); }
  // Distance (RGB units) from pixel color p at index i to the background: to the blended color;
  // for gradients, to the whole A-B segment (contrasts() keeps objects 80 away from it); for
  // stripes and checker, also to A and B themselves (a generated image's bands may be shifted).
  // The stripe / checker weight map is blurred by the image's own measured edge blur, so a
  // blurred band boundary is predicted, not mistaken for an object.
  float distance(Rgbf p, int i) const;
};

inline constexpr float kInlier = 40.f;  // RGB distance of a background inlier

BackgroundFit fit_background(const std::vector<Rgbf>& px, int w, int h);

}  // namespace kiln::quality
