// What a text-to-image request asks for, shared by every image recipe. Per-request state (seed,
// callbacks, cancel flag) lives here; the loaded pipeline is immutable and can serve concurrent
// requests.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

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
  std::function<void(int step, int total)> progress;  // optional
  const std::atomic<bool>* cancel = nullptr;          // optional; set -> Status::cancelled
};

}  // namespace kiln::pipelines::recipes
