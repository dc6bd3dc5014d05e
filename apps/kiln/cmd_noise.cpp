// kiln noise: the initial latent a diffusers pipeline starts from for a seed and size
// (prepare_latents: randn((batch, C, H/8, W/8), generator=torch.Generator().manual_seed(seed))),
// written as a preview PNG and, optionally, as a safetensors tensor that can be compared with
// diffusers directly. Until the image pipelines land (issue 3) this is the main job.
#include <cmath>
#include <cstdio>
#include <string>

#include "commands.hpp"

namespace kiln::cli {

std::function<int()> add_noise(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "noise",
      "Sample the initial latent diffusers would start from for a seed; write a PNG preview");
  struct Opts {
    uint64_t seed = 42;
    int width = 512, height = 512, channels = 4, batch = 1, factor = 8, sm_count = 132;
    std::string rng = "torch-cpu", out, latent_out;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--seed", o->seed, "Seed (as torch.Generator().manual_seed)");
  cmd->add_option("-W,--width", o->width, "Image width in pixels (multiple of --factor)")
      ->check(CLI::Range(8, 16384));
  cmd->add_option("-H,--height", o->height, "Image height in pixels (multiple of --factor)")
      ->check(CLI::Range(8, 16384));
  cmd->add_option("--channels", o->channels, "Latent channels: 4 (SD1.x/SDXL) or 16 (SD3/Flux)")
      ->check(CLI::IsMember({4, 16}));
  cmd->add_option("--batch", o->batch, "Batch size (one randn call, as diffusers)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--factor", o->factor, "VAE downsampling factor")->check(CLI::IsMember({8, 16}));
  cmd->add_option("--rng", o->rng, "torch-cpu (diffusers default) or torch-cuda (GPU UIs)")
      ->check(CLI::IsMember({"torch-cpu", "torch-cuda"}));
  cmd->add_option("--cuda-sm-count", o->sm_count,
                  "SM count of the GPU whose torch-cuda noise to match")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("-o,--output", o->out, "Preview PNG path")->required();
  cmd->add_option("--save-latent", o->latent_out,
                  "Also write the latent as .safetensors (key 'latent')");
  return [&g, o] {
    if (o->width % o->factor || o->height % o->factor) {
      std::fprintf(stderr, "kiln: error: --width %d and --height %d must be multiples of %d\n",
                   o->width, o->height, o->factor);
      return 2;
    }
    Runtime rt = make_runtime(g);
    const int h = o->height / o->factor, w = o->width / o->factor, c = o->channels;
    const std::vector<int64_t> shape = {o->batch, c, h, w};
    kiln_noise_params np = kiln_noise_default_params();
    np.seed = o->seed;
    np.rng = o->rng == "torch-cpu" ? KILN_RNG_TORCH_CPU : KILN_RNG_TORCH_CUDA;
    np.cuda_sm_count = o->sm_count;
    std::vector<float> latent = rt.noise(shape, np);
    // Preview of batch item 0: the first three latent channels as RGB over +-3 sigma,
    // resized to the image size the latent decodes to.
    std::span<const float> first(latent.data(), static_cast<size_t>(3) * h * w);
    std::vector<uint8_t> px = rt.image_from_tensor(first, 3, h, w, -3.f, 3.f, o->width, o->height);
    std::string params = "kiln noise seed=" + std::to_string(o->seed) + " rng=" + o->rng +
                         " latent=" + std::to_string(o->batch) + "x" + std::to_string(c) + "x" +
                         std::to_string(h) + "x" + std::to_string(w);
    if (!o->latent_out.empty()) write_safetensors(o->latent_out, {{"latent", shape, latent}});
    write_png(o->out, px, o->width, o->height, 3, {{"parameters", params}});
    double sum = 0, sq = 0;
    for (float v : latent) {
      sum += v;
      sq += static_cast<double>(v) * v;
    }
    const double n = static_cast<double>(latent.size());
    std::printf(
        "%s\n  latent %lldx%dx%dx%d: mean %.4f, std %.4f, first values %.6f %.6f %.6f\n"
        "  wrote %s%s%s\n",
        params.c_str(), static_cast<long long>(o->batch), c, h, w, sum / n,
        std::sqrt(sq / n - (sum / n) * (sum / n)), latent[0], latent[1], latent[2], o->out.c_str(),
        o->latent_out.empty() ? "" : " and ", o->latent_out.c_str());
    return 0;
  };
}

}  // namespace kiln::cli
