// The inpainting input checks that SD3 and Flux share (recipe_util validates for both), run
// against one recipe: `generate(req)` renders a request with the recipe's own options.
#pragma once

#include <gtest/gtest.h>

#include "kiln/pipelines/recipes/image_request.hpp"
#include "test_support.hpp"

namespace kiln::test {

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
