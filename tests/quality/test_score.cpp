// The matching rule (score.hpp): a correct reading is adherent; a prompt that differs in one
// attribute (color, region, count, shape) or an extra object is not, for the right attribute.
#include <gtest/gtest.h>

#include "reader.hpp"
#include "score.hpp"

namespace kiln::quality {
namespace {

using data::Color;

// A scene with two groups, the first with two copies, and what the reader sees in it.
struct Fixture {
  data::Scene scene;
  std::vector<Detection> found;
  Fixture() {
    for (uint64_t seed = 0;; ++seed) {
      scene = data::sample_scene(seed);
      if (scene.objects.size() >= 2 && scene.objects[0].count() == 2) break;
    }
    found = read_objects(data::render(scene, 64));
  }
};

TEST(Score, CorrectReadingIsAdherent) {
  Fixture f;
  Score s = score(f.scene, f.found);
  EXPECT_TRUE(s.adherent);
  EXPECT_EQ(s.extra, 0);
  ASSERT_EQ(s.groups.size(), f.scene.objects.size());
  for (const GroupResult& g : s.groups) {
    EXPECT_TRUE(g.shape_ok && g.color_ok && g.count_ok && g.region_ok && g.size_ok);
    EXPECT_EQ(g.found, g.wanted);
  }
  EXPECT_EQ(s.groups[0].found, 2);
}

TEST(Score, WrongColorFailsColorNotShape) {
  Fixture f;
  data::Scene wanted = f.scene;
  Color other = Color((int(wanted.objects[0].color) + 1) % data::kNumColors);
  for (const data::Object& o : wanted.objects)
    ASSERT_FALSE(o.shape == wanted.objects[0].shape && o.color == other);
  wanted.objects[0].color = other;
  Score s = score(wanted, f.found);
  EXPECT_FALSE(s.adherent);
  EXPECT_TRUE(s.groups[0].shape_ok);
  EXPECT_FALSE(s.groups[0].color_ok);
  EXPECT_FALSE(s.groups[0].count_ok);
  EXPECT_EQ(s.groups[0].found, 0);
  EXPECT_EQ(s.extra, 2);  // the two copies actually drawn match nothing asked for
  EXPECT_TRUE(s.groups[1].color_ok && s.groups[1].count_ok && s.groups[1].region_ok);
}

TEST(Score, WrongRegionFailsRegionOnly) {
  Fixture f;
  data::Scene wanted = f.scene;
  data::Region r = wanted.objects[0].region;
  wanted.objects[0].region = data::Region((int(r) + 4) % data::kNumRegions);
  Score s = score(wanted, f.found);
  EXPECT_FALSE(s.adherent);
  EXPECT_TRUE(s.groups[0].shape_ok && s.groups[0].color_ok && s.groups[0].count_ok);
  EXPECT_FALSE(s.groups[0].region_ok);
  EXPECT_EQ(s.extra, 0);
}

TEST(Score, WrongCountFailsCountOnly) {
  Fixture f;
  for (int delta : {-1, +1}) {
    data::Scene wanted = f.scene;
    auto& centers = wanted.objects[0].centers;
    if (delta < 0)
      centers.pop_back();
    else
      centers.push_back(centers[0]);
    Score s = score(wanted, f.found);
    EXPECT_FALSE(s.adherent) << delta;
    EXPECT_FALSE(s.groups[0].count_ok) << delta;
    EXPECT_EQ(s.groups[0].found, 2);
    EXPECT_TRUE(s.groups[0].shape_ok && s.groups[0].color_ok && s.groups[0].region_ok);
  }
}

TEST(Score, WrongShapeFailsShape) {
  Fixture f;
  data::Scene wanted = f.scene;
  // A shape no detection has.
  int k = 0;
  for (;; ++k) {
    bool used = false;
    for (const Detection& d : f.found) used = used || int(d.shape) == k;
    if (!used) break;
  }
  wanted.objects[0].shape = data::ShapeKind(k);
  Score s = score(wanted, f.found);
  EXPECT_FALSE(s.adherent);
  EXPECT_FALSE(s.groups[0].shape_ok);
  EXPECT_FALSE(s.groups[0].color_ok);
  EXPECT_EQ(s.extra, 2);
}

TEST(Score, ExtraObjectIsNotAdherent) {
  Fixture f;
  data::Scene wanted = f.scene;
  wanted.objects.pop_back();
  Score s = score(wanted, f.found);
  EXPECT_FALSE(s.adherent);
  EXPECT_EQ(s.extra, f.scene.objects.back().count());
  for (const GroupResult& g : s.groups) EXPECT_TRUE(g.count_ok && g.region_ok);
}

TEST(Score, NothingFound) {
  Fixture f;
  Score s = score(f.scene, std::vector<Detection>{});
  EXPECT_FALSE(s.adherent);
  for (const GroupResult& g : s.groups)
    EXPECT_FALSE(g.shape_ok || g.color_ok || g.count_ok || g.region_ok || g.size_ok);
}

TEST(Score, TallyFractions) {
  Fixture f;
  Tally t;
  t.add(score(f.scene, f.found));
  data::Scene wrong = f.scene;
  wrong.objects[0].region = data::Region((int(wrong.objects[0].region) + 4) % data::kNumRegions);
  t.add(score(wrong, f.found));
  nlohmann::json j = t.to_json();
  EXPECT_EQ(j["images"], 2);
  EXPECT_DOUBLE_EQ(j["adherence"].get<double>(), 0.5);
  int groups = 2 * static_cast<int>(f.scene.objects.size());
  EXPECT_DOUBLE_EQ(j["region"].get<double>(), double(groups - 1) / groups);
  EXPECT_DOUBLE_EQ(j["shape"].get<double>(), 1.0);
  EXPECT_NE(t.summary().find("adherence    50.00 %"), std::string::npos) << t.summary();
}

}  // namespace
}  // namespace kiln::quality
