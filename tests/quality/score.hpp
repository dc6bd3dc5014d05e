// Scoring a reading against the scene its prompt asked for (README.md: "Matching rule").
//
// A detection matches group g when its (shape, color) equals g's; the generator keeps (shape,
// color) pairs distinct between groups, so each detection matches at most one group. Then, per
// group:
//   shape_ok  : some detection has g.shape (any color)                     — "is it there"
//   color_ok  : some detection has g.shape and g.color                     — GenEval's "colors"
//   count_ok  : the number of matching detections equals g.count           — "counting"
//   region_ok : >= 1 matching detection and every one's center lies in g.region — "position"
//   size_ok   : every matching detection has g.size (reported only; captions often omit size)
// An image is adherent when every group has count_ok and region_ok (which imply shape_ok and
// color_ok) and no detection is extra (matches no group). Background is reported, not scored.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "reader.hpp"

namespace kiln::quality {

struct GroupResult {
  data::ShapeKind shape = data::ShapeKind::circle;
  data::Color color = data::Color::red;
  data::Size size = data::Size::medium;
  data::Region region = data::Region::center;
  int wanted = 0, found = 0;  // count asked for, matching detections
  bool shape_ok = false, color_ok = false, count_ok = false, region_ok = false, size_ok = false;
};

struct Score {
  std::vector<GroupResult> groups;
  int extra = 0;  // detections matching no group
  bool adherent = false;
  bool background_ok = false;  // kind and both colors (only from score(scene, Reading))
};

Score score(const data::Scene& wanted, const std::vector<Detection>& found);
// Also fills background_ok.
Score score(const data::Scene& wanted, const Reading& reading);

// Running totals over many images; accuracies are fractions of groups (attributes) or images.
struct Tally {
  int images = 0, adherent = 0, with_extra = 0, background_ok = 0;
  int groups = 0, shape = 0, color = 0, count = 0, region = 0, size = 0;
  void add(const Score& s);
  nlohmann::json to_json() const;
  std::string summary() const;  // one block of aligned "name: value" lines
};

nlohmann::json to_json(const Detection& d);
nlohmann::json to_json(const BackgroundReading& b);
nlohmann::json to_json(const Score& s);

}  // namespace kiln::quality
