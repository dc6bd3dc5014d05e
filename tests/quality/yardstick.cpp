#include "yardstick.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "eval_io.hpp"
#include "kiln/core/error.hpp"
#include "kiln/kiln.hpp"
#include "metrics.hpp"
#include "score.hpp"
#include "text_file.hpp"
#include "yardstick_config.hpp"

namespace kiln::quality {

namespace fs = std::filesystem;

namespace {

// Identical images have infinite PSNR; means and JSON use this cap instead (one 8-bit step in
// one channel of one pixel of a 64x64 RGB image is already 89.0 dB).
constexpr double kPsnrCap = 100.0;

void check_names(const RenderConfig& c, const std::string& origin) {
  auto known = [](const std::optional<std::string>& v, const std::vector<std::string>& names) {
    return !v || std::find(names.begin(), names.end(), *v) != names.end();
  };
  if (!known(c.sampler, sampler_names()))
    fail(Status::invalid_argument, str("unknown sampler '", *c.sampler, "'"), origin);
  if (!known(c.schedule, schedule_names()))
    fail(Status::invalid_argument, str("unknown schedule '", *c.schedule, "'"), origin);
}

data::ImageU8 render_one(Model& model, const data::Sample& prompt, const RenderConfig& c,
                         int size) {
  kiln_render_params p = kiln_render_default_params();
  p.prompt = prompt.caption.c_str();
  p.negative_prompt = c.negative_prompt ? c.negative_prompt->c_str() : nullptr;
  p.width = p.height = size;
  p.steps = c.steps.value_or(0);
  p.guidance_scale = c.cfg ? static_cast<float>(*c.cfg) : -1.f;
  p.seed = prompt.seed;  // the prompt's own seed, for candidate and reference alike
  p.batch = 1;
  p.sampler = c.sampler ? c.sampler->c_str() : nullptr;
  p.schedule = c.schedule ? c.schedule->c_str() : nullptr;
  p.eta = static_cast<float>(c.eta.value_or(0.0));
  std::vector<RenderedImage> images = model.render(p);
  RenderedImage& r = images.at(0);
  return {r.width, r.height, r.channels, std::move(r.pixels)};
}

struct Side {
  RenderConfig config;
  fs::path dir;
  Tally tally;
};

nlohmann::json reading_json(const Reading& r, const Score& s) {
  nlohmann::json dets = nlohmann::json::array();
  for (const Detection& d : r.objects) dets.push_back(to_json(d));
  return {{"score", to_json(s)}, {"background", to_json(r.background)}, {"detections", dets}};
}

}  // namespace

int run_yardstick(const YardstickOptions& o) {
  std::vector<data::Sample> prompts = read_prompts(o.prompts);
  if (o.count > 0 && static_cast<size_t>(o.count) < prompts.size()) prompts.resize(o.count);
  Side cand{load_render_config(o.candidate), fs::path(o.out) / "candidate", {}};
  Side ref{o.reference.empty() ? RenderConfig{} : load_render_config(o.reference),
           fs::path(o.out) / "reference",
           {}};
  check_names(cand.config, o.candidate);
  check_names(ref.config, o.reference.empty() ? "reference (model defaults)" : o.reference);
  for (const fs::path& d : {cand.dir, ref.dir}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) fail(Status::io_error, "cannot create directory: " + ec.message(), d.string());
  }

  kiln_runtime_params rp = kiln_runtime_default_params();
  rp.num_threads = o.threads;
  rp.log_level = KILN_LOG_WARN;
  Runtime rt(rp);
  Model model(rt, o.model);
  kiln_model_defaults defaults = model.defaults();
  const int size = o.size > 0 ? o.size : defaults.width;

  nlohmann::json images = nlohmann::json::array();
  double psnr_sum = 0, psnr_min = std::numeric_limits<double>::infinity(), ssim_sum = 0,
         ssim_min = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const data::Sample& prompt = prompts[i];
    std::fprintf(stderr, "[%zu/%zu] seed %llu: %s\n", i + 1, prompts.size(),
                 static_cast<unsigned long long>(prompt.seed), prompt.caption.c_str());
    char stem[32];
    std::snprintf(stem, sizeof stem, "%06zu", i);
    nlohmann::json entry = {{"index", i}, {"seed", prompt.seed}, {"caption", prompt.caption}};
    data::ImageU8 img[2];
    Side* sides[2] = {&cand, &ref};
    for (int k = 0; k < 2; ++k) {
      Side& s = *sides[k];
      img[k] = render_one(model, prompt, s.config, size);
      const fs::path base = s.dir / stem;
      write_png((fs::path(base) += ".png").string(), img[k].pixels, img[k].width, img[k].height,
                img[k].channels,
                {{"caption", prompt.caption}, {"seed", std::to_string(prompt.seed)}});
      data::write_text_atomic(fs::path(base) += ".json", data::to_json(prompt).dump(1) + "\n");
      Reading r = read_scene(img[k]);
      Score sc = score(prompt.scene, r);
      s.tally.add(sc);
      entry[k == 0 ? "candidate" : "reference"] = reading_json(r, sc);
    }
    double p = psnr(img[0], img[1]), q = ssim(img[0], img[1]);
    psnr_sum += std::min(p, kPsnrCap), psnr_min = std::min(psnr_min, p);
    ssim_sum += q, ssim_min = std::min(ssim_min, q);
    entry["psnr_db"] = std::min(p, kPsnrCap);
    entry["ssim"] = q;
    images.push_back(std::move(entry));
  }
  const double n = static_cast<double>(prompts.size());
  nlohmann::json report = {
      {"model", o.model},
      {"family", model.family()},
      {"prompts", o.prompts},
      {"count", prompts.size()},
      {"size", size},
      {"seed_rule", "each prompt renders with its own 'seed' field, candidate and reference alike"},
      {"candidate", {{"config", to_json(cand.config)}, {"adherence", cand.tally.to_json()}}},
      {"reference", {{"config", to_json(ref.config)}, {"adherence", ref.tally.to_json()}}},
      {"psnr_db",
       {{"mean", psnr_sum / n}, {"min", std::min(psnr_min, kPsnrCap)}, {"cap", kPsnrCap}}},
      {"ssim", {{"mean", ssim_sum / n}, {"min", ssim_min}}},
      {"images", images}};
  data::write_text_atomic(fs::path(o.out) / "report.json", report.dump(1) + "\n");
  std::printf("candidate %s\n%s", to_json(cand.config).dump().c_str(),
              cand.tally.summary().c_str());
  std::printf("reference %s\n%s", to_json(ref.config).dump().c_str(), ref.tally.summary().c_str());
  std::printf(
      "candidate vs reference: PSNR mean %.2f dB (min %.2f, identical = %.0f), "
      "SSIM mean %.4f (min %.4f)\n",
      psnr_sum / n, std::min(psnr_min, kPsnrCap), kPsnrCap, ssim_sum / n, ssim_min);
  std::printf("wrote %s\n", (fs::path(o.out) / "report.json").c_str());
  return 0;
}

}  // namespace kiln::quality
