// kiln render: text-to-image with a diffusers pipeline folder, through the public API only.
// PNGs carry the generation parameters (tEXt "parameters"); progress goes to stderr as a bar on a
// terminal or as JSON lines (--progress json) for tools.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>

#include "commands.hpp"

namespace kiln::cli {

namespace {

struct RenderOpts {
  std::string model, prompt, negative, out, sampler, schedule = "default", progress = "auto";
  std::string init_image, mask, device = "cpu";
  double strength = 0;
  int width = 0, height = 0, steps = 0, batch = 1;
  float cfg = -1.f, eta = 0.f;
  uint64_t seed = 0;
};

struct ProgressState {
  bool json = false, bar = false;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

int on_progress(int step, int total, void* user_data) {
  auto* st = static_cast<ProgressState*>(user_data);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - st->start).count();
  if (st->json) {
    std::fprintf(stderr, "{\"event\":\"step\",\"step\":%d,\"total\":%d,\"elapsed_s\":%.3f}\n", step,
                 total, secs);
  } else if (st->bar) {
    const int width = 30, filled = total ? step * width / total : width;
    std::fprintf(stderr, "\r  [%.*s%.*s] %d/%d %.1fs", filled, "##############################",
                 width - filled, "                              ", step, total, secs);
    if (step == total) std::fputc('\n', stderr);
  }
  std::fflush(stderr);
  return 0;
}

// out.png -> out.png for one image, out-0.png, out-1.png ... for a batch.
std::string output_path(const std::string& out, int i, int n) {
  if (n == 1) return out;
  std::filesystem::path p(out);
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(i) + p.extension().string()))
      .string();
}

}  // namespace

std::function<int()> add_render(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand("render",
                                 "Generate images from a prompt with a diffusers pipeline folder");
  auto o = std::make_shared<RenderOpts>();
  cmd->add_option("-m,--model", o->model, "Pipeline folder (model_index.json)")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt")->required();
  cmd->add_option("-n,--negative-prompt", o->negative, "Negative prompt");
  cmd->add_option("-o,--output", o->out, "Output PNG (a batch writes NAME-0.png, NAME-1.png, ...)")
      ->required();
  cmd->add_option("-W,--width", o->width, "Width in pixels (0 = model default)")
      ->check(CLI::Range(0, 16384));
  cmd->add_option("-H,--height", o->height, "Height in pixels (0 = model default)")
      ->check(CLI::Range(0, 16384));
  cmd->add_option("--steps", o->steps, "Sampling steps (0 = model default)")
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--cfg", o->cfg, "Guidance scale (<= 1 disables CFG; default: the model's)")
      ->check(CLI::Range(0.f, 100.f));
  cmd->add_option("--seed", o->seed, "Seed (torch.Generator().manual_seed convention)");
  cmd->add_option("--batch", o->batch, "Images for the prompt")->check(CLI::Range(1, 64));
  cmd->add_option("--sampler", o->sampler, "Sampler (default: the model's)")
      ->check(CLI::IsMember(sampler_names()));
  cmd->add_option("--schedule", o->schedule, "Sigma schedule")
      ->check(CLI::IsMember(schedule_names()));
  cmd->add_option("--eta", o->eta, "DDIM eta")->check(CLI::Range(0.f, 1.f));
  cmd->add_option("--init-image", o->init_image,
                  "img2img / inpainting source image (sets the size)");
  cmd->add_option("--strength", o->strength,
                  "How much of the init image to repaint (0, 1]; default 0.8, 1.0 with --mask")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--mask", o->mask, "Inpainting mask (white = repaint), same size as --init-image")
      ->needs("--init-image");
  cmd->add_option("--device", o->device,
                  "Where the model runs: cpu (default), cuda (= cuda:0) or cuda:N");
  cmd->add_option("--progress", o->progress, "auto (bar on a terminal), bar, json or none")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}));
  return [&g, o] {
    // Refuse an unusable output path before any work.
    std::filesystem::path parent = std::filesystem::path(o->out).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent)) {
      std::fprintf(stderr, "kiln: error: output directory '%s' does not exist\n", parent.c_str());
      return 1;
    }
    // Read the inputs before loading the model, so a bad path fails fast.
    LoadedImage init, mask;
    if (!o->init_image.empty()) init = load_image(o->init_image, 3);
    if (!o->mask.empty()) {
      mask = load_image(o->mask, 1);
      if (mask.width != init.width || mask.height != init.height) {
        std::fprintf(stderr, "kiln: error: mask '%s' is %dx%d, the init image is %dx%d\n",
                     o->mask.c_str(), mask.width, mask.height, init.width, init.height);
        return 1;
      }
    }
    Runtime rt = make_runtime(g);
    Model model(rt, o->model, o->device);
    kiln_model_defaults d = model.defaults();
    ProgressState st;
    st.json = o->progress == "json";
    st.bar = o->progress == "bar" || (o->progress == "auto" && isatty(STDERR_FILENO));
    kiln_render_params p = kiln_render_default_params();
    p.prompt = o->prompt.c_str();
    p.negative_prompt = o->negative.c_str();
    p.width = o->width;
    p.height = o->height;
    p.steps = o->steps;
    p.guidance_scale = o->cfg;
    p.seed = o->seed;
    p.batch = o->batch;
    p.sampler = o->sampler.empty() ? nullptr : o->sampler.c_str();
    p.schedule = o->schedule.c_str();
    p.eta = o->eta;
    if (!init.pixels.empty()) {
      p.init_image = init.pixels.data();
      p.init_width = init.width;
      p.init_height = init.height;
      p.strength = o->strength;
      if (!mask.pixels.empty()) p.mask = mask.pixels.data();
    }
    p.progress = on_progress;
    p.user_data = &st;
    std::vector<RenderedImage> images = model.render(p);
    // The parameters that produced the images, A1111-style, embedded in every PNG.
    std::ostringstream params;
    params << o->prompt << "\nNegative prompt: " << o->negative
           << "\nSteps: " << (o->steps ? o->steps : d.steps)
           << ", Sampler: " << (o->sampler.empty() ? d.sampler : o->sampler.c_str())
           << ", Schedule: " << o->schedule
           << ", CFG scale: " << (o->cfg < 0 ? d.guidance_scale : o->cfg) << ", Seed: " << o->seed
           << ", Size: " << images[0].width << "x" << images[0].height
           << ", Model: " << std::filesystem::path(o->model).filename().string() << " ("
           << model.family() << "), Batch: " << o->batch << ", Device: " << model.device();
    if (!o->init_image.empty())
      params << ", Init image: " << o->init_image
             << ", Strength: " << (o->strength > 0 ? o->strength : (o->mask.empty() ? 0.8 : 1.0))
             << (o->mask.empty() ? "" : ", Mask: " + o->mask);
    params << ", kiln " << kiln_version();
    for (size_t i = 0; i < images.size(); ++i) {
      const std::string path =
          output_path(o->out, static_cast<int>(i), static_cast<int>(images.size()));
      write_png(path, images[i].pixels, images[i].width, images[i].height, images[i].channels,
                {{"parameters", params.str()}});
      if (st.json)
        std::fprintf(stderr, "{\"event\":\"image\",\"index\":%zu,\"path\":\"%s\"}\n", i,
                     path.c_str());
      else
        std::printf("wrote %s\n", path.c_str());
    }
    return 0;
  };
}

}  // namespace kiln::cli
