// What a text-to-image request asks for, shared by every image recipe. Per-request state (seed,
// callbacks, cancel flag) lives here; the loaded pipeline is immutable and can serve concurrent
// requests.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "kiln/core/tensor.hpp"

namespace kiln::pipelines::recipes {

struct ImageRequest {
  std::string prompt, negative_prompt;
  int width = 0, height = 0;  // 0: the model's default size
  int steps = 20;
  float guidance_scale = 7.5f;  // <= 1 disables classifier-free guidance, as diffusers
  uint64_t seed = 0;
  int batch = 1;  // images for the prompt (num_images_per_prompt)
  std::string sampler = "euler";
  std::string schedule = "default";  // default, karras, exponential, sgm_uniform, simple, beta
  float eta = 0.f;                   // DDIM
  // Image-to-image (optional): (1 or batch, 3, H, W) f32 in [-1, 1]. The output takes its size;
  // width/height, when set, must equal it. Ref: diffusers StableDiffusionImg2ImgPipeline.
  Tensor init_image;
  // Share of the schedule that is run on the noised init image, in (0, 1]: the first
  // steps - int(steps * strength) steps are skipped (diffusers' get_timesteps; a double so that
  // int(steps * strength) rounds as Python does). diffusers' defaults: img2img 0.8, inpaint 1.0.
  double strength = 0.8;
  // Inpainting (optional, needs init_image): (1, 1, H, W) f32 in [0, 1]; >= 0.5 is repainted
  // (diffusers binarizes at 0.5). Ref: diffusers StableDiffusionInpaintPipeline.
  Tensor mask;
  std::function<void(int step, int total)> progress;  // optional
  const std::atomic<bool>* cancel = nullptr;          // optional; set -> Status::cancelled
};

}  // namespace kiln::pipelines::recipes
