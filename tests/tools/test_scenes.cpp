// The procedural scene generator (tools/data): determinism, coverage, placement invariants,
// rendered colors, captions, JSON round trip and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>

#include "scenes.hpp"
#include "test_support.hpp"

namespace kiln::data {
namespace {

constexpr int kSamples = 500;

Rgb pixel(const ImageU8& img, int x, int y) {
  const uint8_t* p = &img.pixels[(static_cast<size_t>(y) * img.width + x) * 3];
  return {p[0], p[1], p[2]};
}

bool near(Rgb a, Rgb b, int tol) {
  return std::abs(a.r - b.r) <= tol && std::abs(a.g - b.g) <= tol && std::abs(a.b - b.b) <= tol;
}

std::string to_string(Rgb c) {
  return str("(", +c.r, ", ", +c.g, ", ", +c.b, ")");
}

TEST(Scenes, SameSeedGivesIdenticalSceneCaptionAndPixels) {
  // 31 and 77: awkward sizes as well as the usual 64.
  for (uint64_t seed : {0ull, 1ull, 12345ull, 0xFFFFFFFFFFFFFFFFull}) {
    Scene a = sample_scene(seed), b = sample_scene(seed);
    EXPECT_EQ(to_json(a).dump(), to_json(b).dump());
    EXPECT_EQ(caption(a, seed), caption(b, seed));
    for (int size : {31, 64, 77}) EXPECT_EQ(render(a, size).pixels, render(b, size).pixels);
  }
}

TEST(Scenes, DifferentSeedsDiffer) {
  std::set<std::string> scenes, captions;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    Scene s = sample_scene(seed);
    scenes.insert(to_json(s).dump());
    captions.insert(caption(s, seed));
  }
  EXPECT_EQ(scenes.size(), 100u);
  EXPECT_GE(captions.size(), 95u);
  EXPECT_NE(render(sample_scene(1), 64).pixels, render(sample_scene(2), 64).pixels);
}

TEST(Scenes, EveryAttributeAppearsIn500Samples) {
  std::set<int> shapes, colors, sizes, regions, kinds, counts, groups;
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    Scene s = sample_scene(seed);
    kinds.insert(static_cast<int>(s.background.kind));
    groups.insert(static_cast<int>(s.objects.size()));
    for (const Object& o : s.objects) {
      shapes.insert(static_cast<int>(o.shape));
      colors.insert(static_cast<int>(o.color));
      sizes.insert(static_cast<int>(o.size));
      regions.insert(static_cast<int>(o.region));
      counts.insert(o.count());
    }
  }
  EXPECT_EQ(shapes.size(), size_t{kNumShapes});
  EXPECT_EQ(colors.size(), size_t{kNumColors});
  EXPECT_EQ(sizes.size(), size_t{kNumSizes});
  EXPECT_EQ(regions.size(), size_t{kNumRegions});
  EXPECT_EQ(kinds.size(), size_t{kNumBackgroundKinds});
  EXPECT_EQ(counts, (std::set<int>{1, 2, 3}));
  EXPECT_EQ(groups, (std::set<int>{1, 2, 3}));
}

TEST(Scenes, ObjectsInsideDisjointAndContrasting) {
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    Scene s = sample_scene(seed);
    ASSERT_NO_THROW(validate(s)) << "seed " << seed;
    std::vector<std::pair<Point, double>> discs;
    std::set<Region> regions;
    for (const Object& o : s.objects) {
      EXPECT_NE(o.color, s.background.a) << "seed " << seed;
      EXPECT_NE(o.color, s.background.b) << "seed " << seed;
      EXPECT_TRUE(contrasts(o.color, s.background)) << "seed " << seed;
      EXPECT_TRUE(regions.insert(o.region).second) << "seed " << seed;
      double r = radius(o.size);
      for (const Point& p : o.centers) {
        EXPECT_TRUE(p.x >= r && p.x <= 1 - r && p.y >= r && p.y <= 1 - r) << "seed " << seed;
        EXPECT_EQ(3 * static_cast<int>(p.y * 3) + static_cast<int>(p.x * 3),
                  static_cast<int>(o.region))
            << "seed " << seed;
        for (const auto& [q, rq] : discs)
          EXPECT_GE(std::hypot(p.x - q.x, p.y - q.y), r + rq) << "seed " << seed;
        discs.emplace_back(p, r);
      }
    }
  }
}

TEST(Scenes, ShapesLieInTheirBoundingDiscAndContainTheirInteriorPoint) {
  for (int k = 0; k < kNumShapes; ++k) {
    auto s = static_cast<ShapeKind>(k);
    int inside = 0;
    for (int i = -200; i <= 200; ++i)
      for (int j = -200; j <= 200; ++j) {
        double x = i / 190.0, y = j / 190.0;
        if (!shape_contains(s, x, y)) continue;
        ++inside;
        EXPECT_LE(x * x + y * y, 1.0 + 1e-12) << name(s) << " at " << x << ", " << y;
      }
    EXPECT_GT(inside, 190 * 190 / 2) << name(s) << " is too thin";  // > 1/2 of the unit square
    // Interior point: the whole disc of radius 0.2 around it is inside.
    Point c = interior_point(s);
    for (int a = 0; a < 64; ++a) {
      double t = a * 6.283185307179586 / 64;
      EXPECT_TRUE(shape_contains(s, c.x + 0.2 * std::cos(t), c.y + 0.2 * std::sin(t))) << name(s);
    }
  }
}

TEST(Scenes, RenderedColorsMatchTheScene) {
  constexpr int kSize = 128;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Scene s = sample_scene(seed);
    ImageU8 img = render(s, kSize);
    ASSERT_EQ(img.width, kSize);
    ASSERT_EQ(img.height, kSize);
    ASSERT_EQ(img.channels, 3);
    for (const Object& o : s.objects) {
      Point ip = interior_point(o.shape);
      for (const Point& c : o.centers) {
        double r = radius(o.size);
        int x = static_cast<int>((c.x + ip.x * r) * kSize),
            y = static_cast<int>((c.y + ip.y * r) * kSize);
        EXPECT_TRUE(near(pixel(img, x, y), palette(o.color), 2))
            << "seed " << seed << " " << name(o.color) << " " << name(o.shape) << " at " << x << ","
            << y << ": got " << to_string(pixel(img, x, y));
      }
    }
    // The top-left pixel is background unless an object reaches it (radius > center distance).
    Rgb want = background_at(s.background, 0.5 / kSize, 0.5 / kSize);
    EXPECT_TRUE(near(pixel(img, 0, 0), want, 3))
        << "seed " << seed << ": got " << to_string(pixel(img, 0, 0)) << " want "
        << to_string(want);
    if (s.background.kind == BackgroundKind::plain) {
      EXPECT_EQ(pixel(img, 0, 0), palette(s.background.a)) << "seed " << seed;
    }
  }
}

TEST(Scenes, EdgesAreAntiAliased) {
  // A lone large circle on white: some edge pixels are strictly between the two colors.
  Scene s;
  s.background = {BackgroundKind::plain, Color::white, Color::white};
  s.objects.push_back({ShapeKind::circle, Color::black, Size::large, Region::center, {{0.5, 0.5}}});
  ImageU8 img = render(s, 64);
  int mixed = 0;
  for (size_t i = 0; i < img.pixels.size(); i += 3)
    mixed += img.pixels[i] > 20 && img.pixels[i] < 245;
  EXPECT_GT(mixed, 20);
}

TEST(Scenes, CaptionNamesEveryObjectAndTheBackground) {
  // Every template and relation shows up somewhere.
  std::map<std::string, int> phrases = {
      {"background with", 0}, {" on a", 0},       {" above ", 0},
      {" below ", 0},         {" next to ", 0},   {"to the left of", 0},
      {"to the right of", 0}, {"fading from", 0}, {", ", 0}};
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    Scene s = sample_scene(seed);
    std::string c = caption(s, seed);
    for (auto& [phrase, n] : phrases) n += c.find(phrase) != std::string::npos;
    for (const Object& o : s.objects) {
      EXPECT_NE(c.find(name(o.color)), std::string::npos) << c;
      EXPECT_NE(c.find(name(o.shape)), std::string::npos) << c;
      if (o.count() > 1) {
        EXPECT_NE(c.find(o.count() == 2 ? "two " : "three "), std::string::npos) << c;
      }
    }
    EXPECT_NE(c.find("background"), std::string::npos) << c;
    EXPECT_NE(c.find(name(s.background.a)), std::string::npos) << c;
    EXPECT_NE(c.find(name(s.background.b)), std::string::npos) << c;
    EXPECT_EQ(c.find("  "), std::string::npos) << c;
    EXPECT_EQ(c.find("a orange"), std::string::npos) << c;
  }
  for (const auto& [phrase, n] : phrases) EXPECT_GT(n, 5) << "'" << phrase << "'";
}

TEST(Scenes, CaptionRelationsFollowRegions) {
  Scene s;
  s.background = {BackgroundKind::plain, Color::yellow, Color::yellow};
  s.objects.push_back(
      {ShapeKind::circle, Color::red, Size::small, Region::top, {{0.4, 0.1}, {0.6, 0.1}}});
  s.objects.push_back({ShapeKind::square, Color::blue, Size::medium, Region::center, {{0.5, 0.5}}});
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    std::string c = caption(s, seed);
    seen.insert(c);
    EXPECT_EQ(c.find("below"), std::string::npos) << c;
    EXPECT_NE(c.find("two "), std::string::npos) << c;
    EXPECT_NE(c.find("circles"), std::string::npos) << c;
  }
  EXPECT_TRUE(
      seen.count("two small red circles above a medium blue square on a yellow background") ||
      seen.count("two red circles above a blue square on a yellow background") ||
      seen.count("two small red circles above a blue square on a yellow background") ||
      seen.count("two red circles above a medium blue square on a yellow background"));
}

TEST(Scenes, JsonRoundTrip) {
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    Scene s = sample_scene(seed);
    nlohmann::json j = nlohmann::json::parse(to_json(s).dump());
    Scene back = from_json(j);
    EXPECT_EQ(back, s) << "seed " << seed;
    EXPECT_EQ(to_json(back).dump(), to_json(s).dump());
  }
}

TEST(Scenes, BadInputsThrow) {
  using test::expect_error;
  SceneOptions o;
  o.max_count = 4;
  expect_error([&] { sample_scene(1, o); }, "max_count");
  o = {};
  o.max_objects = 0;
  expect_error([&] { sample_scene(1, o); }, "max_objects");
  o.max_objects = 4;
  expect_error([&] { sample_scene(1, o); }, "max_objects");
  Scene s = sample_scene(7);
  expect_error([&] { render(s, 15); }, "size");
  expect_error([&] { render(s, 0); }, "size");

  Scene bad = s;
  bad.objects[0].centers.push_back(bad.objects[0].centers[0]);
  while (bad.objects[0].count() <= 3) bad.objects[0].centers.push_back({0.5, 0.5});
  expect_error([&] { render(bad, 64); }, "count");
  bad = s;
  bad.objects[0].color = bad.background.a;
  expect_error([&] { caption(bad, 1); }, "stand out");
  bad.background = {BackgroundKind::horizontal_gradient, Color::red, Color::yellow};
  bad.objects[0].color = Color::orange;
  expect_error([&] { caption(bad, 1); }, "stand out");

  nlohmann::json j = to_json(s);
  j["objects"][0]["shape"] = "hexagon";
  expect_error([&] { from_json(j); }, Status::format_error, "hexagon");
  j = to_json(s);
  j["objects"][0]["count"] = 4;
  expect_error([&] { from_json(j); }, Status::format_error, "count");
  j = to_json(s);
  j.erase("background");
  expect_error([&] { from_json(j); }, Status::format_error, "background");
  j = to_json(s);
  j["objects"][0]["centers"][0] = {2.0, 0.5};
  expect_error([&] { from_json(j); }, Status::format_error, "image");
}

}  // namespace
}  // namespace kiln::data
