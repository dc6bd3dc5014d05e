// kiln-quality reader: what a scene image (data::render's, or a generated one) shows, read back
// as objects {shape, color, size, region, center} and a background, so a generated image can be
// scored against the scene its prompt describes (issue 4, items 3 and 5; README.md here).
//
// Pipeline (thresholds are RGB distances on 0..255):
//  1. Background: the best of 451 (kind, color A, color B) hypotheses under a truncated
//     quadratic cost, A and B re-measured on the inliers, stripe / checker edges blurred to the
//     image's measured edge blur (background.hpp).
//  2. Pixels: a pixel off the background is unmixed against every palette color c that
//     contrasts() with that background: p = bg + alpha (c - bg) + residual. Anti-aliasing and
//     blur average RGB values, so an edge pixel lies on that segment (this is why the reader
//     works in RGB, not Lab: mixtures are straight lines only there); nearest-color without
//     unmixing turns red-on-yellow edges orange. Foreground = some color fits with alpha >= 0.5.
//  3. Components: 8-connected foreground regions. A region's color is the candidate with the
//     least mean residual among those covering its interior (90th percentile alpha >= 0.75, so
//     a gray object is not "half-covered black"). A region two colors explain (touching objects)
//     is split by per-pixel colors, fringes merged back. Regions under 40 % of the smallest
//     shape are noise.
//  4. Shapes: a soft alpha mask per region is fitted with the eight shapes of
//     data::shape_contains, sharp and blurred (shape_fit.hpp); the best soft IoU names the
//     shape, the fitted radius the size class, and the fitted bounding-disc center the region
//     (its 3x3 cell). A poor fit (IoU < 0.85) is also tried as 2 or 3 same-shape copies (blurred
//     copies can touch: bounding discs are only 0.02 of the side apart).
#pragma once

#include <vector>

#include "scenes.hpp"

namespace kiln::quality {

using data::ImageU8;

struct Detection {
  data::ShapeKind shape = data::ShapeKind::circle;
  data::Color color = data::Color::red;
  data::Size size = data::Size::medium;
  data::Region region = data::Region::center;  // 3x3 cell of `center`
  data::Point center;     // bounding-disc center, fractions of the side (x right, y down)
  double radius = 0;      // fitted bounding radius, fraction of the side
  double confidence = 0;  // soft IoU of the fitted shape with the object's mask, 0..1
  double margin = 0;      // that IoU minus the best IoU of any other shape
  data::Rgb measured;     // mean color of the object's interior
};

struct BackgroundReading {
  data::Background background;  // kind and palette colors of the best hypothesis
  data::Rgb a, b;               // colors measured on the image
  double inlier_fraction = 0;   // pixels within 40 of the background model
};

struct Reading {
  BackgroundReading background;
  std::vector<Detection> objects;  // in raster order of their top-left pixel
};

// Reads an RGB (or RGBA, alpha ignored) image of any size >= 16. Throws kiln::Error
// (invalid_argument) for other channel counts or sizes.
Reading read_scene(const ImageU8& img);
// read_scene(img).objects.
std::vector<Detection> read_objects(const ImageU8& img);

// Size class of a bounding radius (fraction of the side): nearest of data::radius() on a log scale.
data::Size size_class(double radius);
// 3x3 cell of a point (fractions); points on the far edge belong to the last cell.
data::Region region_of(data::Point p);

}  // namespace kiln::quality
