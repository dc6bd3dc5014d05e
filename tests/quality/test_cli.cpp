// kiln-quality as a user runs it: prompts, validate, score (with a report) and the errors of
// bad inputs (clear message naming the file and line, exit status 1, no crash); the render
// config parser on its own.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "eval_io.hpp"
#include "kiln/pipelines/sinks/image_file.hpp"
#include "scenes.hpp"
#include "test_support.hpp"
#include "text_file.hpp"
#include "yardstick_config.hpp"

namespace kiln::quality {
namespace {

namespace fs = std::filesystem;

struct CliResult {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CliResult run(const test::TempDir& tmp, const std::string& args) {
  fs::path out = tmp.path / "stdout.txt", err = tmp.path / "stderr.txt";
  std::string cmd =
      std::string(KILN_QUALITY_CLI) + " " + args + " >" + out.string() + " 2>" + err.string();
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// DIR/NNNNNN.{png,json} as kiln-scenes writes them, for seeds first .. first + n - 1.
void write_scenes(const fs::path& dir, uint64_t first, int n) {
  fs::create_directories(dir);
  for (int i = 0; i < n; ++i) {
    data::Sample s = data::make_sample(first + i);
    char stem[16];
    std::snprintf(stem, sizeof stem, "%06d", i);
    nlohmann::json j = data::to_json(s);
    j["size"] = 64;
    data::write_text_atomic(dir / (std::string(stem) + ".json"), j.dump());
    pipelines::write_png((dir / (std::string(stem) + ".png")).string(), data::render(s.scene, 64));
  }
}

TEST(Cli, PromptsAreSamplesOfConsecutiveSeeds) {
  test::TempDir tmp;
  fs::path file = tmp.path / "p.jsonl";
  CliResult r = run(tmp, "prompts --count 3 --seed 1000000000 --out " + file.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  std::vector<data::Sample> p = read_prompts(file);
  ASSERT_EQ(p.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    data::Sample want = data::make_sample(1000000000ull + i);
    EXPECT_EQ(p[i].seed, want.seed);
    EXPECT_EQ(p[i].caption, want.caption);
    EXPECT_EQ(p[i].scene, want.scene);
  }
}

TEST(Cli, ValidatePrintsAdherence) {
  test::TempDir tmp;
  CliResult r = run(tmp, "validate --count 20 --seed 5000000");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("adherence    100.00 % (20/20)"), std::string::npos) << r.out;
}

TEST(Cli, ScoreDirectoryWithReport) {
  test::TempDir tmp;
  fs::path dir = tmp.path / "scenes";
  write_scenes(dir, 42, 4);
  // Image 3 is scored against a scene it does not show: another seed's.
  nlohmann::json j = read_json_file(dir / "000003.json");
  j["scene"] = data::to_json(data::sample_scene(7));
  data::write_text_atomic(dir / "000003.json", j.dump());
  fs::copy_file(dir / "000000.png", dir / "000009.png");  // no JSON: skipped
  fs::path report = tmp.path / "report.json";
  CliResult r = run(tmp, "score " + dir.string() + " --report " + report.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("adherence    75.00 % (3/4)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 PNGs without JSON skipped"), std::string::npos) << r.out;
  nlohmann::json rep = read_json_file(report);
  ASSERT_EQ(rep["images"].size(), 4u);
  EXPECT_EQ(rep["images"][0]["file"], "000000.png");
  EXPECT_TRUE(rep["images"][0]["score"]["adherent"].get<bool>());
  EXPECT_FALSE(rep["images"][3]["score"]["adherent"].get<bool>());
  EXPECT_DOUBLE_EQ(rep["summary"]["adherence"].get<double>(), 0.75);
}

TEST(Cli, BadInputsFailWithClearMessages) {
  test::TempDir tmp;
  // score: a missing directory, a malformed JSON file.
  CliResult r = run(tmp, "score " + (tmp.path / "nope").string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;
  fs::path dir = tmp.path / "scenes";
  write_scenes(dir, 1, 1);
  data::write_text_atomic(dir / "000000.json", "{\"scene\": ");
  r = run(tmp, "score " + dir.string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("malformed JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("000000.json"), std::string::npos) << r.err;

  // yardstick: inputs are checked before the model loads, so no model is needed here.
  fs::path prompts = tmp.path / "p.jsonl", cfg = tmp.path / "cand.json";
  data::write_text_atomic(cfg, "{\"steps\": 4}");
  auto yard = [&](const std::string& extra) {
    return run(tmp, "yardstick --model " + (tmp.path / "no_model").string() + " --prompts " +
                        prompts.string() + " --out " + (tmp.path / "y").string() + " " + extra);
  };
  r = yard("--config " + cfg.string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("cannot open prompt file"), std::string::npos) << r.err;

  std::string good = data::to_json(data::make_sample(5)).dump();
  data::write_text_atomic(prompts, good + "\n" + good.substr(0, 40) + "\n");
  r = yard("--config " + cfg.string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("p.jsonl:2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("malformed JSON"), std::string::npos) << r.err;

  data::write_text_atomic(prompts, good + "\n\n{\"seed\": 1, \"caption\": \"x\"}\n");
  r = yard("--config " + cfg.string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("p.jsonl:3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing field 'scene'"), std::string::npos) << r.err;

  data::write_text_atomic(prompts, good + "\n");
  data::write_text_atomic(cfg, "{\"step\": 4}");
  r = yard("--config " + cfg.string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("unknown key 'step'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cand.json"), std::string::npos) << r.err;

  data::write_text_atomic(cfg, "{\"sampler\": \"no_such_sampler\"}");
  r = yard("--config " + cfg.string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("unknown sampler 'no_such_sampler'"), std::string::npos) << r.err;

  data::write_text_atomic(cfg, "{}");
  r = yard("--config " + cfg.string() + " --reference " + (tmp.path / "ref.json").string());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("ref.json"), std::string::npos) << r.err;

  r = yard("--config " + cfg.string());  // every input fine: the model folder is missing
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("no_model"), std::string::npos) << r.err;
}

TEST(Cli, YardstickOnATinyRandomPipeline) {
  // Random weights draw noise, so adherence is ~0; what is checked is the plumbing: renders
  // through the public API, per-prompt seeds, PNG + JSON per image, PSNR/SSIM, report.json.
  test::TempDir tmp;
  fs::path prompts = tmp.path / "p.jsonl", same = tmp.path / "same.json",
           fewer = tmp.path / "fewer.json";
  write_prompts(prompts, {data::make_sample(1000000000), data::make_sample(1000000001),
                          data::make_sample(1000000002)});
  data::write_text_atomic(same, "{}");
  data::write_text_atomic(fewer, "{\"steps\": 1}");
  std::string base = "yardstick --model " + (test::data_dir() / "sdxl_pipe").string() +
                     " --prompts " + prompts.string() + " --count 2 --threads 1";
  fs::path out = tmp.path / "same";
  CliResult r = run(tmp, base + " --config " + same.string() + " --out " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json rep = read_json_file(out / "report.json");
  EXPECT_EQ(rep["count"], 2);
  EXPECT_DOUBLE_EQ(rep["psnr_db"]["mean"].get<double>(), 100.0);  // identical: the cap
  EXPECT_DOUBLE_EQ(rep["ssim"]["min"].get<double>(), 1.0);
  EXPECT_EQ(rep["images"][1]["seed"], 1000000001u);
  for (const char* side : {"candidate", "reference"}) {
    EXPECT_TRUE(fs::exists(out / side / "000001.png")) << side;
    EXPECT_EQ(read_json_file(out / side / "000001.json")["seed"], 1000000001u);
    EXPECT_EQ(rep[side]["adherence"]["images"], 2);
  }
  out = tmp.path / "fewer";
  r = run(tmp, base + " --config " + fewer.string() + " --out " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  rep = read_json_file(out / "report.json");
  EXPECT_EQ(rep["candidate"]["config"]["steps"], 1);
  EXPECT_LT(rep["psnr_db"]["mean"].get<double>(), 60.0);
  EXPECT_LT(rep["ssim"]["mean"].get<double>(), 1.0);
  EXPECT_NE(r.out.find("candidate vs reference: PSNR mean"), std::string::npos) << r.out;
}

TEST(RenderConfig, ParsesKnownKeysAndRejectsTheRest) {
  RenderConfig c = parse_render_config(
      nlohmann::json::parse(R"({"sampler": "euler", "schedule": "karras", "steps": 8, "cfg": 4.5,
                                "eta": 0.5, "negative_prompt": "blurry"})"),
      "c.json");
  EXPECT_EQ(*c.sampler, "euler");
  EXPECT_EQ(*c.schedule, "karras");
  EXPECT_EQ(*c.steps, 8);
  EXPECT_DOUBLE_EQ(*c.cfg, 4.5);
  EXPECT_DOUBLE_EQ(*c.eta, 0.5);
  EXPECT_EQ(*c.negative_prompt, "blurry");
  EXPECT_EQ(to_json(c)["steps"], 8);
  EXPECT_FALSE(parse_render_config(nlohmann::json::object(), "c.json").steps.has_value());
  auto parse = [](const char* text) { parse_render_config(nlohmann::json::parse(text), "c.json"); };
  test::expect_error([&] { parse(R"({"steps": 2.5})"); }, Status::format_error,
                     "'steps' must be an integer");
  test::expect_error([&] { parse(R"({"steps": 0})"); }, Status::format_error, "1..10000");
  test::expect_error([&] { parse(R"({"cfg": "high"})"); }, Status::format_error,
                     "'cfg' must be a number");
  test::expect_error([&] { parse(R"({"sampler": 3})"); }, Status::format_error,
                     "'sampler' must be a string");
  test::expect_error([&] { parse(R"({"guidance": 3})"); }, Status::format_error,
                     "unknown key 'guidance'");
  test::expect_error([&] { parse(R"([1])"); }, Status::format_error, "JSON object");
}

}  // namespace
}  // namespace kiln::quality
