#include "kiln/pipelines/image_processor.hpp"

#include <cmath>

#include "kiln/ops/ops.hpp"

namespace kiln::pipelines {

ImageU8 tensor_to_image(const Tensor& chw, float lo, float hi, int out_w, int out_h) {
  KILN_ARG(chw.defined() && chw.ndim() == 3, "tensor_to_image", "expected a (C, H, W) tensor, got ",
           chw.str());
  const int64_t C = chw.size(0);
  KILN_ARG(C == 1 || C == 3, "tensor_to_image", "expected 1 or 3 channels, got ", C);
  KILN_ARG(hi > lo, "tensor_to_image", "value range [", lo, ", ", hi, "] is empty");
  KILN_ARG(out_w >= 0 && out_h >= 0 && out_w <= 65535 && out_h <= 65535, "tensor_to_image",
           "output size ", out_w, "x", out_h, " out of range");
  Tensor t = chw.to(DType::f32);
  if (out_w > 0 && out_h > 0 && (out_w != chw.size(2) || out_h != chw.size(1))) {
    int64_t size[] = {out_h, out_w};
    t = ops::interpolate(t.unsqueeze(0), size, ops::InterpMode::bilinear, false).squeeze(0);
  }
  // HWC, then to the host: the 8-bit quantisation below writes a host buffer (the media edge).
  t = t.permute({1, 2, 0}).contiguous().to(Device::cpu());
  ImageU8 img;
  img.height = static_cast<int>(t.size(0));
  img.width = static_cast<int>(t.size(1));
  img.channels = static_cast<int>(C);
  img.pixels.resize(static_cast<size_t>(t.numel()));
  const float* p = t.data<float>();
  const float inv = 1.f / (hi - lo);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = (p[i] - lo) * inv;
    v = std::isnan(v) ? 0.f : std::fmin(std::fmax(v, 0.f), 1.f);
    img.pixels[i] = static_cast<uint8_t>(std::nearbyint(v * 255.f));  // numpy round: half-even
  }
  return img;
}

Tensor image_to_tensor(const ImageU8& img) {
  KILN_ARG(img.width > 0 && img.height > 0 && img.channels > 0, "image_to_tensor", "empty image");
  KILN_ARG(img.pixels.size() == static_cast<size_t>(img.width) * img.height * img.channels,
           "image_to_tensor", "pixel buffer size does not match ", img.width, "x", img.height, "x",
           img.channels);
  Tensor hwc = Tensor::empty({img.height, img.width, img.channels}, DType::f32);
  float* p = hwc.mutable_data<float>();
  for (size_t i = 0; i < img.pixels.size(); ++i) p[i] = img.pixels[i] / 255.f * 2.f - 1.f;
  return hwc.permute({2, 0, 1}).contiguous();
}

}  // namespace kiln::pipelines
