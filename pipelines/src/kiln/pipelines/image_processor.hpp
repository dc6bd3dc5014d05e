// Conversions between image tensors and 8-bit pixels, as diffusers' VaeImageProcessor does:
// postprocess (x in [lo, hi] -> round(clamp((x - lo) / (hi - lo)) * 255)) and preprocess
// (pixels -> [-1, 1]).
#pragma once

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/sinks/image_file.hpp"

namespace kiln::pipelines {

// chw: (C, H, W) f32 with C = 1 or 3. out_w/out_h == 0 keep the tensor's size; otherwise the
// tensor is resized bilinearly (align_corners = false) first.
ImageU8 tensor_to_image(const Tensor& chw, float lo, float hi, int out_w = 0, int out_h = 0);
// (C, H, W) f32 in [-1, 1] from 8-bit pixels (x / 255 * 2 - 1).
Tensor image_to_tensor(const ImageU8& img);

}  // namespace kiln::pipelines
