// C ABI: images (tensor -> pixels, PNG writing).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "capi_common.hpp"
#include "kiln/pipelines/image_processor.hpp"
#include "kiln/pipelines/sinks/image_file.hpp"

using namespace kiln;

extern "C" {

KILN_API kiln_status kiln_image_from_tensor(kiln_runtime* rt, const float* data, int channels,
                                            int h, int w, float lo, float hi, int out_w,
                                            int out_h, uint8_t* pixels, size_t pixels_size) {
  return capi::guard([&] {
    const char* fn = "kiln_image_from_tensor";
    capi::need(rt, fn, "rt");
    capi::need(data, fn, "data");
    capi::need(pixels, fn, "pixels");
    KILN_ARG(h > 0 && w > 0 && h <= 65535 && w <= 65535, fn, "tensor size ", w, "x", h,
             " out of range");
    KILN_ARG(out_w > 0 && out_h > 0, fn, "output size ", out_w, "x", out_h, " must be positive");
    KILN_ARG(std::isfinite(lo) && std::isfinite(hi) && hi > lo, fn, "value range [", lo, ", ", hi,
             "] is empty or not finite");
    KILN_ARG(channels == 1 || channels == 3, fn, "channels must be 1 or 3, got ", channels);
    const size_t need = static_cast<size_t>(out_w) * out_h * channels;
    KILN_ARG(pixels_size == need, fn, "pixels buffer holds ", pixels_size, " bytes, ", need,
             " needed");
    Tensor t = Tensor::empty({channels, h, w}, DType::f32);
    std::memcpy(t.mutable_raw_data(), data, t.nbytes());
    pipelines::ImageU8 img = pipelines::tensor_to_image(t, lo, hi, out_w, out_h);
    std::memcpy(pixels, img.pixels.data(), need);
  });
}

KILN_API kiln_status kiln_image_load(const char* path, int channels, uint8_t** pixels, int* width,
                                     int* height) {
  return capi::guard([&] {
    const char* fn = "kiln_image_load";
    capi::need(path, fn, "path");
    capi::need(pixels, fn, "pixels");
    capi::need(width, fn, "width");
    capi::need(height, fn, "height");
    *pixels = nullptr;
    KILN_ARG(channels == 1 || channels == 3 || channels == 4, fn, "channels must be 1, 3 or 4, got ",
             channels);
    pipelines::ImageU8 img = pipelines::read_image(path, channels);
    auto* buf = static_cast<uint8_t*>(std::malloc(img.pixels.size()));
    if (!buf) throw std::bad_alloc();
    std::memcpy(buf, img.pixels.data(), img.pixels.size());
    *width = img.width;
    *height = img.height;
    *pixels = buf;
  });
}

KILN_API void kiln_image_free(uint8_t* pixels) { std::free(pixels); }

KILN_API kiln_status kiln_image_write_png(const char* path, const uint8_t* pixels, int width,
                                          int height, int channels, const char* const* text_keys,
                                          const char* const* text_values, size_t n_text) {
  return capi::guard([&] {
    const char* fn = "kiln_image_write_png";
    capi::need(path, fn, "path");
    capi::need(pixels, fn, "pixels");
    KILN_ARG(width > 0 && height > 0 && width <= 65535 && height <= 65535, fn, "image size ",
             width, "x", height, " out of range");
    KILN_ARG(channels == 1 || channels == 3 || channels == 4, fn, "channels must be 1, 3 or 4");
    std::vector<std::pair<std::string, std::string>> text;
    if (n_text) {
      capi::need(text_keys, fn, "text_keys");
      capi::need(text_values, fn, "text_values");
      for (size_t i = 0; i < n_text; ++i) {
        KILN_ARG(text_keys[i] && text_values[i], fn, "text entry ", i, " is NULL");
        text.emplace_back(text_keys[i], text_values[i]);
      }
    }
    pipelines::ImageU8 img;
    img.width = width;
    img.height = height;
    img.channels = channels;
    img.pixels.assign(pixels, pixels + static_cast<size_t>(width) * height * channels);
    pipelines::write_png(path, img, text);
  });
}

}  // extern "C"
