// check_targets: minimums on dotted paths of a yardstick report.
#include <gtest/gtest.h>

#include "targets.hpp"
#include "test_support.hpp"

namespace kiln::quality {
namespace {

const nlohmann::json kReport = nlohmann::json::parse(R"({
  "candidate": {"adherence": {"adherence": 0.5, "background": 0.84}},
  "psnr_db": {"mean": 48.5, "min": 14.25}, "family": "sdxl"})");

TEST(Targets, MetAndMissed) {
  auto r = check_targets(kReport,
                         nlohmann::json::parse(R"({"_comment": "x",
                           "candidate.adherence.background": 0.84,
                           "candidate.adherence.adherence": 0.9, "psnr_db.mean": 40})"),
                         "t.json");
  ASSERT_EQ(r.size(), 3u);  // the comment is skipped
  std::map<std::string, TargetResult> by;
  for (const auto& x : r) by[x.path] = x;
  EXPECT_TRUE(by["candidate.adherence.background"].met);  // equal to the minimum is met
  EXPECT_FALSE(by["candidate.adherence.adherence"].met);
  EXPECT_DOUBLE_EQ(by["candidate.adherence.adherence"].measured, 0.5);
  EXPECT_TRUE(by["psnr_db.mean"].met);
}

TEST(Targets, BadTargetsNameFileAndKey) {
  auto run = [](const char* t) {
    return [t] { check_targets(kReport, nlohmann::json::parse(t), "t.json"); };
  };
  EXPECT_TRUE(test::throws_error(run(R"({"candidate.nope": 1})"), Status::format_error,
                                 {"t.json", "candidate.nope", "no \"nope\""}));
  EXPECT_TRUE(test::throws_error(run(R"({"family": 1})"), Status::format_error,
                                 {"t.json", "not a number"}));
  EXPECT_TRUE(test::throws_error(run(R"({"psnr_db.min": "high"})"), Status::format_error,
                                 {"must be a number"}));
  EXPECT_TRUE(test::throws_error(run(R"([1, 2])"), Status::format_error, {"t.json", "object"}));
  EXPECT_TRUE(test::throws_error(run(R"({"psnr_db.min.x": 1})"), Status::format_error,
                                 {"no \"x\""}));
}

}  // namespace
}  // namespace kiln::quality
