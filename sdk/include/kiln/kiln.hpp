// kiln — header-only C++ layer over the C ABI (kiln.h): RAII handles, exceptions on the C++
// side only, std::span views. This is what the kiln CLI and kiln-studio use; it includes
// nothing from the library's internals.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kiln.h"

namespace kiln {

class Exception : public std::runtime_error {
 public:
  Exception(kiln_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  kiln_status status() const noexcept { return status_; }

 private:
  kiln_status status_;
};

inline void check(kiln_status s) {
  if (s != KILN_OK) throw Exception(s, kiln_last_error());
}

namespace detail {
template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const noexcept { Free(p); }
};
}  // namespace detail

struct TensorInfo {
  std::string name, dtype, file;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class Runtime {
 public:
  explicit Runtime(const kiln_runtime_params& params = kiln_runtime_default_params()) {
    kiln_runtime* rt = nullptr;
    check(kiln_runtime_create(&params, &rt));
    rt_.reset(rt);
  }
  kiln_runtime* get() const { return rt_.get(); }

  int device_count(kiln_device_type type) const {
    int n = 0;
    check(kiln_runtime_device_count(rt_.get(), type, &n));
    return n;
  }
  std::string device_name(kiln_device_type type, int index) const {
    char buf[512];
    check(kiln_runtime_device_name(rt_.get(), type, index, buf, sizeof(buf)));
    return buf;
  }
  std::string build_info() const {
    char buf[1024];
    check(kiln_runtime_build_info(rt_.get(), buf, sizeof(buf)));
    return buf;
  }

  // Standard normal noise of `shape` (see kiln_noise_params for the seed conventions).
  std::vector<float> noise(std::span<const int64_t> shape, const kiln_noise_params& p) {
    int64_t n = 1;
    for (int64_t d : shape) {
      if (d < 0) throw Exception(KILN_ERR_INVALID_ARGUMENT, "negative dimension in noise shape");
      if (d != 0 && n > INT64_MAX / d)
        throw Exception(KILN_ERR_INVALID_ARGUMENT, "noise shape has too many elements");
      n *= d;
    }
    std::vector<float> out(static_cast<size_t>(n));
    check(kiln_noise_generate(rt_.get(), &p, shape.data(), static_cast<int>(shape.size()),
                              out.data(), out.size()));
    return out;
  }

  // (C, h, w) f32 -> out_w x out_h interleaved 8-bit pixels (see kiln_image_from_tensor).
  std::vector<uint8_t> image_from_tensor(std::span<const float> data, int channels, int h, int w,
                                         float lo, float hi, int out_w, int out_h) {
    // Checked before the sizes reach size_t arithmetic, where a negative one wraps to a huge
    // allocation (std::length_error) instead of an invalid-argument status.
    if (channels <= 0 || h <= 0 || w <= 0 || out_w <= 0 || out_h <= 0)
      throw Exception(KILN_ERR_INVALID_ARGUMENT, "image_from_tensor: sizes must be positive");
    if (data.size() != static_cast<size_t>(channels) * h * w)
      throw Exception(KILN_ERR_INVALID_ARGUMENT, "image_from_tensor: data size does not match C*h*w");
    std::vector<uint8_t> px(static_cast<size_t>(out_w) * out_h * channels);
    check(kiln_image_from_tensor(rt_.get(), data.data(), channels, h, w, lo, hi, out_w, out_h,
                                 px.data(), px.size()));
    return px;
  }

 private:
  std::unique_ptr<kiln_runtime, detail::Deleter<kiln_runtime, kiln_runtime_free>> rt_;
};

class Weights {
 public:
  Weights(Runtime& rt, const std::string& path) {
    kiln_weights* w = nullptr;
    check(kiln_weights_open(rt.get(), path.c_str(), &w));
    w_.reset(w);
  }
  size_t size() const {
    size_t n = 0;
    check(kiln_weights_count(w_.get(), &n));
    return n;
  }
  TensorInfo info(size_t i) const {
    kiln_tensor_info ti{};
    ti.struct_size = sizeof(ti);
    check(kiln_weights_tensor_info(w_.get(), i, &ti));
    TensorInfo out;
    out.name = ti.name;
    out.dtype = ti.dtype;
    out.file = ti.file ? ti.file : "";
    out.shape.assign(ti.shape, ti.shape + ti.ndim);
    out.nbytes = ti.nbytes;
    return out;
  }
  std::vector<float> read_f32(const std::string& name, size_t numel) const {
    std::vector<float> out(numel);
    check(kiln_weights_read_f32(w_.get(), name.c_str(), out.data(), out.size()));
    return out;
  }

 private:
  std::unique_ptr<kiln_weights, detail::Deleter<kiln_weights, kiln_weights_free>> w_;
};

struct RenderedImage {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // interleaved 8-bit
};

inline std::string detect_family(const std::string& path) {
  char buf[64];
  check(kiln_detect_family(path.c_str(), buf, sizeof(buf)));
  return buf;
}

// Text description of a single-file checkpoint (see kiln_checkpoint_describe).
inline std::string describe_checkpoint(const std::string& path) {
  std::vector<char> buf(1 << 16);
  check(kiln_checkpoint_describe(path.c_str(), buf.data(), buf.size()));
  return buf.data();
}

inline std::vector<std::string> names(const char* const* list) {
  std::vector<std::string> v;
  for (; list && *list; ++list) v.emplace_back(*list);
  return v;
}
inline std::vector<std::string> sampler_names() { return names(kiln_sampler_names()); }
inline std::vector<std::string> schedule_names() { return names(kiln_schedule_names()); }

class Model {
 public:
  Model(Runtime& rt, const std::string& path) {
    kiln_model* m = nullptr;
    check(kiln_model_load(rt.get(), path.c_str(), &m));
    m_.reset(m);
  }
  // On a device: "cpu", "cuda", "cuda:N" (see kiln_model_load_params).
  Model(Runtime& rt, const std::string& path, const std::string& device) {
    kiln_model_load_params p = kiln_model_load_default_params();
    p.device = device.c_str();
    kiln_model* m = nullptr;
    check(kiln_model_load_with_params(rt.get(), path.c_str(), &p, &m));
    m_.reset(m);
  }
  std::string family() const { return kiln_model_family(m_.get()); }
  std::string device() const { return kiln_model_device(m_.get()); }
  kiln_model_defaults defaults() const {
    kiln_model_defaults d{};
    d.struct_size = sizeof(d);
    check(kiln_model_get_defaults(m_.get(), &d));
    return d;
  }
  // Renders with `params` (kiln_render_default_params() + fields); callbacks are in params.
  std::vector<RenderedImage> render(const kiln_render_params& params) {
    kiln_images* raw = nullptr;
    check(kiln_render(m_.get(), &params, &raw));
    std::unique_ptr<kiln_images, detail::Deleter<kiln_images, kiln_images_free>> images(raw);
    std::vector<RenderedImage> out(kiln_images_count(raw));
    for (size_t i = 0; i < out.size(); ++i) {
      const uint8_t* px = nullptr;
      check(kiln_images_get(raw, i, &out[i].width, &out[i].height, &out[i].channels, &px));
      out[i].pixels.assign(px, px + static_cast<size_t>(out[i].width) * out[i].height * out[i].channels);
    }
    return out;
  }

 private:
  std::unique_ptr<kiln_model, detail::Deleter<kiln_model, kiln_model_free>> m_;
};

struct LoadedImage {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};
// Reads an image file as 8-bit pixels with `channels` channels (1, 3 or 4).
inline LoadedImage load_image(const std::string& path, int channels) {
  uint8_t* px = nullptr;
  LoadedImage img;
  check(kiln_image_load(path.c_str(), channels, &px, &img.width, &img.height));
  std::unique_ptr<uint8_t, void (*)(uint8_t*)> hold(px, kiln_image_free);
  img.channels = channels;
  img.pixels.assign(px, px + static_cast<size_t>(img.width) * img.height * channels);
  return img;
}

inline void write_png(const std::string& path, std::span<const uint8_t> pixels, int width,
                      int height, int channels,
                      const std::vector<std::pair<std::string, std::string>>& text = {}) {
  if (pixels.size() != static_cast<size_t>(width) * height * channels)
    throw Exception(KILN_ERR_INVALID_ARGUMENT, "write_png: pixel buffer size mismatch");
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : text) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  check(kiln_image_write_png(path.c_str(), pixels.data(), width, height, channels, keys.data(),
                             values.data(), text.size()));
}

// One benchmark workload (see kiln_bench_run): spec and result are JSON text.
inline std::string bench_run(Runtime& rt, const std::string& spec_json) {
  std::vector<char> buf(size_t{1} << 20);  // kiln.h: 1 MiB always holds a result
  check(kiln_bench_run(rt.get(), spec_json.c_str(), buf.data(), buf.size()));
  return buf.data();
}
// {"workload": {"param": default, ...}, ...}
inline std::string bench_workloads() {
  std::vector<char> buf(size_t{1} << 16);
  check(kiln_bench_workloads(buf.data(), buf.size()));
  return buf.data();
}

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::span<const float> data;
};
inline void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::vector<const char*> names;
  std::vector<const float*> data;
  std::vector<int> ndims;
  std::vector<const int64_t*> shapes;
  for (const auto& t : tensors) {
    names.push_back(t.name.c_str());
    data.push_back(t.data.data());
    ndims.push_back(static_cast<int>(t.shape.size()));
    shapes.push_back(t.shape.data());
  }
  check(kiln_safetensors_write_f32(path.c_str(), tensors.size(), names.data(), data.data(),
                                   ndims.data(), shapes.data()));
}

}  // namespace kiln
