// Shape classification by fitting the generator's own geometry (data::shape_contains) to a soft
// foreground mask: internal to the reader (reader.cpp), exposed for its tests.
#pragma once

#include <vector>

#include "scenes.hpp"

namespace kiln::quality {

// Area (in units of the bounding radius squared) and centroid of a shape, measured once on a
// fine grid. Every shape is symmetric about x = 0; only the heart's centroid is off center.
struct ShapeGeometry {
  double area = 0;
  double centroid_y = 0;  // in units of the bounding radius, y down
};
const ShapeGeometry& geometry(data::ShapeKind s);

// A soft mask over a window of the image: alpha in [0, 1] is how much of the pixel the object
// covers (1 inside, fractional on anti-aliased or blurred edges, 0 elsewhere).
struct AlphaWindow {
  int x0 = 0, y0 = 0, w = 0, h = 0;  // window in image pixels
  std::vector<float> alpha;          // (h, w) row-major
  double sum() const;
  // Alpha-weighted centroid in image pixels (pixel centers at i + 0.5).
  void centroid(double& cx, double& cy) const;
};

struct ShapeFit {
  data::ShapeKind shape = data::ShapeKind::circle;
  double cx = 0, cy = 0, r = 0;  // bounding-disc center and radius, image pixels
  double blur = 0;               // gaussian sigma (px) of the best template
  double iou = 0;                // soft IoU of the fitted shape with the mask
  double runner_up_iou = 0;      // best IoU among the other seven shapes
};

// Soft IoU (sum of min / sum of max) between `mask` and shape `s` rendered at (cx, cy) with
// bounding radius r (pixels), with 4x4 supersampling like data::render, then blurred by a
// gaussian of sigma `blur` pixels (0 = sharp).
double soft_iou(const AlphaWindow& mask, data::ShapeKind s, double cx, double cy, double r,
                double blur = 0);

// Fits all eight shapes: each starts at the radius its area implies and the center its centroid
// implies; the best three are refined by coordinate descent over (cx, cy, r), sharp and with
// template blurs of 0.6 and 1.0 px; the best IoU wins.
ShapeFit fit_shape(const AlphaWindow& mask);

}  // namespace kiln::quality
