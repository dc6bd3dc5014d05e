// The scene reader on ground truth: the generator's exact renders (>= 99 % adherent is the
// target, README.md), degraded renders (blur, color shift, noise), every shape and color on its
// own, size classes, background kinds, and input errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "degrade.hpp"
#include "reader.hpp"
#include "score.hpp"
#include "shape_fit.hpp"
#include "test_support.hpp"

namespace kiln::quality {
namespace {

using data::Color;
using data::ShapeKind;

// Scenes first .. first + count - 1 read back; the summary lists the non-adherent seeds.
Tally read_range(uint64_t first, int count, int size, bool degraded, std::string& summary) {
  Tally t;
  std::string seeds;
  for (int i = 0; i < count; ++i) {
    uint64_t seed = first + static_cast<uint64_t>(i);
    data::Scene scene = data::sample_scene(seed);
    data::ImageU8 img = data::render(scene, size);
    if (degraded) img = degrade(img, seed);
    Score s = score(scene, read_scene(img));
    t.add(s);
    if (!s.adherent) seeds.append(" ").append(std::to_string(seed));
  }
  // append(), not operator+: GCC 12 misreports + chains under -Wrestrict (as in error.hpp).
  summary = t.summary();
  summary.append("non-adherent seeds:").append(seeds);
  return t;
}

TEST(Reader, ExactRendersAtLeast99PercentAdherent) {
  // 500 scenes of the validation seed range (README: 100 % measured on 2000).
  std::string why;
  Tally t = read_range(5000000, 500, 64, false, why);
  EXPECT_GE(t.adherent, 495) << why;
  EXPECT_GE(t.background_ok, 495) << why;
  EXPECT_GE(t.shape, t.groups * 99 / 100) << why;
  EXPECT_GE(t.color, t.groups * 99 / 100) << why;
  EXPECT_GE(t.count, t.groups * 99 / 100) << why;
  EXPECT_GE(t.region, t.groups * 99 / 100) << why;
}

TEST(Reader, DegradedRendersMostlyAdherent) {
  // Blur 0.7 px, +-10 color shift, noise sigma 8: measured 99.6 % on 500 (README); 97 % here
  // leaves room for a different seed range.
  std::string why;
  Tally t = read_range(6000000, 200, 64, true, why);
  EXPECT_GE(t.adherent, 194) << why;
  EXPECT_GE(t.background_ok, 194) << why;
}

TEST(Reader, AwkwardSizes) {
  for (int size : {77, 128}) {
    std::string why;
    Tally t = read_range(5100000, 60, size, false, why);
    EXPECT_GE(t.adherent, 59) << "size " << size << "\n" << why;
  }
}

// One medium object in the center on a plain background it contrasts with.
data::Scene single(ShapeKind s, Color c, data::Size size = data::Size::medium) {
  data::Scene scene;
  scene.background = {data::BackgroundKind::plain, c == Color::white ? Color::black : Color::white,
                      c == Color::white ? Color::black : Color::white};
  data::Object o;
  o.shape = s, o.color = c, o.size = size, o.region = data::Region::center;
  o.centers = {{0.5, 0.5}};
  scene.objects = {o};
  return scene;
}

TEST(Reader, EveryShapeAndColorRecognized) {
  for (int s = 0; s < data::kNumShapes; ++s)
    for (int c = 0; c < data::kNumColors; ++c) {
      data::Scene scene = single(ShapeKind(s), Color(c));
      std::vector<Detection> found = read_objects(data::render(scene, 64));
      ASSERT_EQ(found.size(), 1u) << data::name(ShapeKind(s)) << " " << data::name(Color(c));
      EXPECT_EQ(found[0].shape, ShapeKind(s)) << data::name(Color(c));
      EXPECT_EQ(found[0].color, Color(c)) << data::name(ShapeKind(s));
      EXPECT_EQ(found[0].region, data::Region::center);
      EXPECT_NEAR(found[0].center.x, 0.5, 0.01);
      EXPECT_NEAR(found[0].center.y, 0.5, 0.01);
      EXPECT_GT(found[0].confidence, 0.9);
    }
}

TEST(Reader, SizeClassesAndFittedRadius) {
  for (int z = 0; z < data::kNumSizes; ++z)
    for (ShapeKind s : {ShapeKind::circle, ShapeKind::star, ShapeKind::heart, ShapeKind::ring}) {
      auto size = static_cast<data::Size>(z);
      std::vector<Detection> found = read_objects(data::render(single(s, Color::blue, size), 64));
      ASSERT_EQ(found.size(), 1u);
      EXPECT_EQ(found[0].size, size) << data::name(s);
      EXPECT_NEAR(found[0].radius, data::radius(size), 0.006) << data::name(s);
    }
  EXPECT_EQ(size_class(0.083), data::Size::small);
  EXPECT_EQ(size_class(0.085), data::Size::medium);
  EXPECT_EQ(size_class(0.118), data::Size::medium);
  EXPECT_EQ(size_class(0.119), data::Size::large);
  EXPECT_EQ(region_of({0.0, 0.0}), data::Region::top_left);
  EXPECT_EQ(region_of({0.34, 0.66}), data::Region::center);
  EXPECT_EQ(region_of({1.0, 1.0}), data::Region::bottom_right);
}

TEST(Reader, GrayIsNotHalfCoveredBlack) {
  // Gray lies on the white-black segment: per-pixel unmixing alone calls it black at alpha 0.52.
  std::vector<Detection> found =
      read_objects(data::render(single(ShapeKind::triangle, Color::gray), 64));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].color, Color::gray);
}

TEST(Reader, BackgroundKindsAndColors) {
  for (int k = 0; k < data::kNumBackgroundKinds; ++k) {
    data::Scene scene = single(ShapeKind::star, Color::red);
    auto kind = static_cast<data::BackgroundKind>(k);
    scene.background = {kind, Color::white,
                        kind == data::BackgroundKind::plain ? Color::white : Color::blue};
    for (bool degraded : {false, true}) {
      data::ImageU8 img = data::render(scene, 64);
      if (degraded) img = degrade(img, 7);
      Reading r = read_scene(img);
      EXPECT_EQ(r.background.background, scene.background) << data::name(kind);
      EXPECT_GT(r.background.inlier_fraction, 0.9) << data::name(kind);
      ASSERT_EQ(r.objects.size(), 1u) << data::name(kind) << " degraded " << degraded;
      EXPECT_EQ(r.objects[0].shape, ShapeKind::star);
      EXPECT_EQ(r.objects[0].color, Color::red);
    }
  }
}

TEST(Reader, EmptyBackgroundHasNoObjects) {
  data::ImageU8 img{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 200)};
  EXPECT_TRUE(read_objects(img).empty());
  EXPECT_TRUE(read_objects(degrade(img, 3)).empty());
}

TEST(Reader, ShapeGeometry) {
  const double pi = 3.14159265358979;
  EXPECT_NEAR(geometry(ShapeKind::circle).area, pi, 0.01);
  EXPECT_NEAR(geometry(ShapeKind::square).area, 1.96, 0.01);
  EXPECT_NEAR(geometry(ShapeKind::ring).area, pi * (1 - 0.55 * 0.55), 0.01);
  EXPECT_NEAR(geometry(ShapeKind::diamond).area, 1.4, 0.01);
  EXPECT_NEAR(geometry(ShapeKind::cross).area, 2 * 0.64 * 1.88 - 0.64 * 0.64, 0.01);
  EXPECT_NEAR(geometry(ShapeKind::triangle).centroid_y, 0.0, 0.005);  // equilateral, inscribed
  EXPECT_GT(std::abs(geometry(ShapeKind::heart).centroid_y), 0.02);   // the only off-center one
}

TEST(Reader, BadInputsThrow) {
  test::expect_error([] { read_objects({64, 64, 1, std::vector<uint8_t>(64 * 64)}); }, "channels");
  test::expect_error(
      [] {
        read_objects({64, 32, 3, std::vector<uint8_t>(64 * 32 * 3)});
      },
      "square");
  test::expect_error([] { read_objects({8, 8, 3, std::vector<uint8_t>(8 * 8 * 3)}); }, "16");
  test::expect_error([] { read_objects({64, 64, 3, std::vector<uint8_t>(10)}); }, "buffer");
}

}  // namespace
}  // namespace kiln::quality
