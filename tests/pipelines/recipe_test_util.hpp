// Helpers for the recipe tests (tests/pipelines): a request from a golden case, and the
// inpainting input checks that SD3 and Flux share. Header-only: kiln_test_support does not
// depend on kiln_pipelines.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"
#include "pipeline_test_util.hpp"
#include "test_support.hpp"

namespace kiln::test {

// The ImageRequest of one case of a tests/reference golden file: prompt, negative_prompt, steps,
// guidance_scale, seed, batch (when present); the sampler from "sampler" or, mapped, from the
// diffusers "scheduler" class; for img2img/inpainting ("strength" not null) the init image, the
// strength and, when the goldens hold "<name>.mask", the mask, the size then coming from the
// image; otherwise width and height.
inline pipelines::recipes::ImageRequest request_from_case(const nlohmann::json& c,
                                                          const io::SafetensorsFile& goldens) {
  const std::string name = c.at("name");
  auto present = [&](const char* key) { return c.contains(key) && !c[key].is_null(); };
  pipelines::recipes::ImageRequest req;
  req.prompt = c.at("prompt");
  if (present("negative_prompt")) req.negative_prompt = c["negative_prompt"];
  req.steps = c.at("steps");
  req.guidance_scale = c.at("guidance_scale");
  req.seed = c.at("seed");
  if (present("batch")) req.batch = c["batch"];
  req.sampler = present("sampler") ? c["sampler"].get<std::string>()
                                   : sampler_for_scheduler(c.at("scheduler"));
  if (present("strength")) {
    req.init_image = goldens.get(name + ".init_image");
    req.strength = c["strength"];
    if (goldens.has(name + ".mask")) req.mask = goldens.get(name + ".mask");
  } else {
    req.width = c.at("width");
    req.height = c.at("height");
  }
  return req;
}

// On a 32x40 (H x W) pipeline: a mask without an init image, masks of the wrong shape, and the
// samplers that cannot inpaint (diffusers blends twice per Heun step and UniPC has no
// scale_noise: refused, not guessed) are each a clear error.
template <typename Generate>
void expect_flow_inpaint_request_errors(Generate generate) {
  pipelines::recipes::ImageRequest req;
  req.steps = 2;
  req.sampler = "flow_euler";
  req.width = 40;
  req.height = 32;
  req.mask = Tensor::zeros({1, 1, 32, 40});
  expect_error([&] { generate(req); }, "a mask needs an init_image");
  req.width = req.height = 0;
  req.init_image = Tensor::zeros({1, 3, 32, 40});
  req.mask = Tensor::zeros({1, 1, 32, 36});
  expect_error([&] { generate(req); }, "mask must be f32 (1, 1, 32, 40)");
  req.mask = Tensor::zeros({1, 3, 32, 40});
  expect_error([&] { generate(req); }, "mask must be f32 (1, 1, 32, 40)");
  req.mask = Tensor::zeros({1, 1, 32, 40});
  for (const char* sampler : {"flow_heun", "flow_unipc"}) {
    req.sampler = sampler;
    EXPECT_TRUE(throws_error([&] { generate(req); }, Status::unsupported,
                             {"inpainting", "flow_euler"}))
        << sampler;
  }
}

}  // namespace kiln::test
