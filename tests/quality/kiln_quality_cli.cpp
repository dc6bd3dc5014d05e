// kiln-quality: reads scene images back and scores them against their prompt's scene
// (README.md here).
//   kiln-quality validate --count 2000 --seed 5000000 [--size 64] [--degrade]
//   kiln-quality score DIR [--report FILE.json]
//   kiln-quality prompts --count 200 --seed 1000000000 --out FILE.jsonl
//   kiln-quality yardstick --model DIR --prompts FILE.jsonl --config cand.json
//                          [--reference ref.json] [--count N] [--size S] [--out DIR]
// Exit status 0 on success, 1 on any error (message on stderr naming the file / line).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

#include "degrade.hpp"
#include "eval_io.hpp"
#include "targets.hpp"
#include "kiln/core/error.hpp"
#include "kiln/kiln.hpp"
#include "score.hpp"
#include "text_file.hpp"
#include "yardstick.hpp"

namespace fs = std::filesystem;
using namespace kiln::quality;
namespace data = kiln::data;

namespace {

nlohmann::json detections_json(const Reading& r) {
  nlohmann::json dets = nlohmann::json::array();
  for (const Detection& d : r.objects) dets.push_back(to_json(d));
  return dets;
}

struct ValidateOpts {
  int count = 2000, size = 64, show = 0;
  uint64_t seed = 5000000;
  bool degrade = false;
  std::string report, dump;
};

// Ground truth: the generator's own renders (optionally degraded) read back and scored.
int validate(const ValidateOpts& o) {
  Tally tally;
  nlohmann::json failures = nlohmann::json::array();
  for (int i = 0; i < o.count; ++i) {
    uint64_t seed = o.seed + static_cast<uint64_t>(i);
    data::Scene scene = data::sample_scene(seed);
    data::ImageU8 img = data::render(scene, o.size);
    if (o.degrade) img = degrade(img, seed);
    Reading r = read_scene(img);
    Score s = score(scene, r);
    tally.add(s);
    if (!s.adherent || !s.background_ok)
      failures.push_back({{"seed", seed},
                          {"scene", data::to_json(scene)},
                          {"score", to_json(s)},
                          {"background", to_json(r.background)},
                          {"detections", detections_json(r)}});
    if (!s.adherent && !o.dump.empty()) {
      fs::create_directories(o.dump);
      kiln::pipelines::write_png((fs::path(o.dump) / (std::to_string(seed) + ".png")).string(),
                                 img);
    }
    if (!s.adherent && static_cast<int>(failures.size()) <= o.show)
      std::cout << failures.back().dump() << "\n";
  }
  std::cout << "validate: seeds " << o.seed << ".." << o.seed + o.count - 1 << ", size " << o.size
            << (o.degrade ? ", degraded (blur 0.7 px, shift +-10, noise 8)" : ", exact renders")
            << "\n"
            << tally.summary();
  if (!o.report.empty())
    data::write_text_atomic(
        o.report,
        nlohmann::json({{"summary", tally.to_json()}, {"failures", failures}}).dump(1) + "\n");
  return 0;
}

// A directory of NNNNNN.png + NNNNNN.json (kiln-scenes layout; yardstick's output folders).
int score_dir(const std::string& dir, const std::string& report) {
  int skipped = 0;
  std::vector<ScoredImage> items = list_scored_images(dir, skipped);
  if (items.empty()) kiln::fail(kiln::Status::io_error, "no NNNNNN.png with a NNNNNN.json", dir);
  Tally tally;
  nlohmann::json per_image = nlohmann::json::array();
  for (const ScoredImage& it : items) {
    data::ImageU8 img = kiln::pipelines::read_image(it.png.string(), 3);
    Reading r = read_scene(img);
    Score s = score(it.scene, r);
    tally.add(s);
    per_image.push_back({{"file", it.png.filename().string()},
                         {"score", to_json(s)},
                         {"background", to_json(r.background)},
                         {"detections", detections_json(r)}});
  }
  std::cout << "score: " << dir
            << (skipped ? " (" + std::to_string(skipped) + " PNGs without JSON skipped)" : "")
            << "\n"
            << tally.summary();
  if (!report.empty())
    data::write_text_atomic(
        report,
        nlohmann::json({{"directory", dir}, {"summary", tally.to_json()}, {"images", per_image}})
                .dump(1) +
            "\n");
  return 0;
}

int prompts(int count, uint64_t seed, const std::string& out) {
  std::vector<data::Sample> samples;
  for (int i = 0; i < count; ++i)
    samples.push_back(data::make_sample(seed + static_cast<uint64_t>(i)));
  write_prompts(out, samples);
  std::cout << "wrote " << count << " prompts (seeds " << seed << ".." << seed + count - 1
            << ") to " << out << "\n";
  return 0;
}

int check(const std::string& report_file, const std::string& targets_file) {
  const auto results = check_targets(read_json_file(report_file), read_json_file(targets_file),
                                     targets_file);
  bool all = true;
  for (const TargetResult& r : results) {
    std::cout << (r.met ? "  met     " : "  MISSED  ") << r.path << " = " << r.measured
              << " (minimum " << r.minimum << ")\n";
    all = all && r.met;
  }
  std::cout << (all ? "all " : "NOT all ") << results.size() << " targets met (" << targets_file
            << ")\n";
  return all ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln-quality: read scene images back and score them against their prompts"};
  app.require_subcommand(1);

  ValidateOpts v;
  auto* val = app.add_subcommand("validate", "Read the generator's own renders and score them");
  val->add_option("--count", v.count, "scenes")->check(CLI::Range(1, 10000000));
  val->add_option("--seed", v.seed, "seed of the first scene; scene i uses seed + i");
  val->add_option("--size", v.size, "image side (16..4096)")->check(CLI::Range(16, 4096));
  val->add_flag("--degrade", v.degrade, "blur 0.7 px, color shift +-10, noise sigma 8 (per seed)");
  val->add_option("--show-failures", v.show, "print the first N non-adherent readings");
  val->add_option("--report", v.report, "write the summary and every failure as JSON");
  val->add_option("--dump", v.dump, "write the image of every non-adherent scene to DIR/SEED.png");

  std::string dir, report;
  auto* sc = app.add_subcommand("score", "Score DIR/NNNNNN.png against DIR/NNNNNN.json");
  sc->add_option("dir", dir, "directory")->required();
  sc->add_option("--report", report, "per-image results as JSON");

  int pcount = 200;
  uint64_t pseed = 1000000000;
  std::string pout;
  auto* pr =
      app.add_subcommand("prompts", "Write held-out prompts as JSON lines {seed, caption, scene}");
  pr->add_option("--count", pcount, "prompts")->check(CLI::Range(1, 10000000));
  pr->add_option("--seed", pseed, "seed of the first prompt; prompt i uses seed + i");
  pr->add_option("--out", pout, "output .jsonl")->required();

  YardstickOptions y;
  y.out = "yardstick";
  auto* ys = app.add_subcommand(
      "yardstick", "Render prompts with a candidate and a reference config; adherence, PSNR, SSIM");
  ys->add_option("--model", y.model, "diffusers pipeline folder")->required();
  ys->add_option("--prompts", y.prompts, "prompts .jsonl (kiln-quality prompts)")->required();
  ys->add_option("--config", y.candidate, "candidate render config JSON")->required();
  ys->add_option("--reference", y.reference, "reference render config JSON (default: model's)");
  ys->add_option("--count", y.count, "first N prompts (0 = all)")->check(CLI::Range(0, 10000000));
  ys->add_option("--size", y.size, "image side (0 = model default width)")
      ->check(CLI::Range(0, 4096));
  ys->add_option("--threads", y.threads, "CPU threads (0 = all)")->check(CLI::Range(0, 4096));
  ys->add_option("--out", y.out, "output directory (default: ./yardstick)");

  std::string creport, ctargets;
  auto* ck = app.add_subcommand(
      "check", "Compare a yardstick report.json with minimums; exit 3 when one is missed");
  ck->add_option("report", creport, "report.json of kiln-quality yardstick")->required();
  ck->add_option("targets", ctargets, "targets JSON {\"dotted.path\": minimum}")->required();

  CLI11_PARSE(app, argc, argv);
  try {
    if (val->parsed()) return validate(v);
    if (sc->parsed()) return score_dir(dir, report);
    if (pr->parsed()) return prompts(pcount, pseed, pout);
    if (ys->parsed()) return run_yardstick(y);
    if (ck->parsed()) return check(creport, ctargets);
  } catch (const kiln::Error& e) {
    std::cerr << "kiln-quality: error: " << e.what() << "\n";
  } catch (const kiln::Exception& e) {
    std::cerr << "kiln-quality: error: " << e.what() << " (" << kiln_status_name(e.status())
              << ")\n";
  } catch (const std::exception& e) {
    std::cerr << "kiln-quality: error: " << e.what() << "\n";
  }
  return 1;
}
