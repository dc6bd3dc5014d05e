// C ABI: models and rendering (kiln_model_*, kiln_render, kiln_images_*).
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "capi_common.hpp"
#include "kiln/pipelines/image_processor.hpp"
#include "kiln/pipelines/loaders/single_file.hpp"
#include "kiln/pipelines/registry.hpp"
#include "kiln/pipelines/run_component.hpp"
#include "kiln/pipelines/samplers/samplers.hpp"
#include "kiln/pipelines/samplers/schedules.hpp"

using namespace kiln;

struct kiln_model {
  std::unique_ptr<pipelines::ImagePipeline> pipeline;
  pipelines::ImageDefaults defaults;
  std::string device;  // Device::str() of the pipeline's device
};

struct kiln_images {
  std::vector<pipelines::ImageU8> images;
};

namespace {

const char* const* name_list(const std::vector<std::string>& names) {
  // Built once; the strings live in the registry's static vectors.
  auto* list = new const char*[names.size() + 1];
  for (size_t i = 0; i < names.size(); ++i) list[i] = names[i].c_str();
  list[names.size()] = nullptr;
  return list;
}

}  // namespace

extern "C" {

KILN_API kiln_status kiln_detect_family(const char* path, char* buf, size_t buf_size) {
  return capi::guard([&] {
    const char* fn = "kiln_detect_family";
    capi::need(path, fn, "path");
    capi::need(buf, fn, "buf");
    const std::string& name = pipelines::detect_family(path).name;
    KILN_ARG(buf_size > name.size(), fn, "buffer of ", buf_size, " bytes is too small");
    std::memcpy(buf, name.c_str(), name.size() + 1);
  });
}

KILN_API kiln_status kiln_component_run(kiln_runtime* rt, const char* component_dir,
                                        const char* inputs, const char* outputs,
                                        const char* prefix, const char* mode) {
  return capi::guard([&] {
    const char* fn = "kiln_component_run";
    capi::need(rt, fn, "rt");
    capi::need(component_dir, fn, "component_dir");
    capi::need(inputs, fn, "inputs");
    capi::need(outputs, fn, "outputs");
    pipelines::RunComponentOptions opt;
    opt.prefix = prefix ? prefix : "";
    opt.mode = mode ? mode : "";
    auto names = pipelines::run_component(component_dir, inputs, outputs, opt);
    rt->logger.info("wrote ", names.size(), " tensors to ", outputs);
  });
}

KILN_API kiln_status kiln_checkpoint_describe(const char* path, char* buf, size_t buf_size) {
  return capi::guard([&] {
    const char* fn = "kiln_checkpoint_describe";
    capi::need(path, fn, "path");
    capi::need(buf, fn, "buf");
    const pipelines::loaders::CheckpointDescription d = pipelines::loaders::describe_checkpoint(path);
    std::ostringstream os;
    os << "  checkpoint family: " << d.family << (d.variant.empty() ? "" : " (" + d.variant + ")")
       << "\n";
    for (const auto& c : d.components) {
      os << "  " << c.name << " (" << c.class_name << "): " << c.tensors << " tensors, "
         << c.parameters << " parameters, dtypes";
      for (const auto& [dt, n] : c.dtypes) os << " " << dt << "x" << n;
      os << "\n    config " << c.config.dump() << "\n";
    }
    if (d.unclaimed_tensors) os << "  " << d.unclaimed_tensors << " tensors read by no component\n";
    for (const auto& n : d.notes) os << "  note: " << n << "\n";
    const std::string text = os.str();
    KILN_ARG(buf_size > text.size(), fn, "buffer of ", buf_size, " bytes is too small for ",
             text.size() + 1);
    std::memcpy(buf, text.c_str(), text.size() + 1);
  });
}

KILN_API kiln_status kiln_model_load(kiln_runtime* rt, const char* path, kiln_model** out) {
  return kiln_model_load_with_params(rt, path, nullptr, out);
}

KILN_API kiln_model_load_params kiln_model_load_default_params(void) {
  kiln_model_load_params p{};
  p.struct_size = sizeof(kiln_model_load_params);
  return p;
}

KILN_API kiln_status kiln_model_load_with_params(kiln_runtime* rt, const char* path,
                                                 const kiln_model_load_params* params,
                                                 kiln_model** out) {
  return capi::guard([&] {
    const char* fn = "kiln_model_load";
    capi::need(rt, fn, "rt");
    capi::need(path, fn, "path");
    capi::need(out, fn, "out");
    *out = nullptr;
    pipelines::PipelineLoadOptions opt;
    if (params) {
      KILN_ARG(params->struct_size == sizeof(kiln_model_load_params), fn, "params->struct_size ",
               params->struct_size, " != sizeof(kiln_model_load_params) ",
               sizeof(kiln_model_load_params));
      if (params->device) opt.device = Device::parse(params->device);
    }
    auto m = std::make_unique<kiln_model>();
    m->pipeline = pipelines::load_image_pipeline(path, opt);
    m->defaults = m->pipeline->defaults();
    m->device = m->pipeline->device().str();
    rt->logger.info("loaded ", path, " (", m->pipeline->family(), ") on ", m->device);
    *out = m.release();
  });
}

KILN_API void kiln_model_free(kiln_model* m) { delete m; }

KILN_API const char* kiln_model_family(const kiln_model* m) {
  return m ? m->pipeline->family().c_str() : "";
}

KILN_API const char* kiln_model_device(const kiln_model* m) { return m ? m->device.c_str() : ""; }

KILN_API kiln_status kiln_model_get_defaults(const kiln_model* m, kiln_model_defaults* out) {
  return capi::guard([&] {
    const char* fn = "kiln_model_get_defaults";
    capi::need(m, fn, "m");
    capi::need(out, fn, "out");
    KILN_ARG(out->struct_size == sizeof(kiln_model_defaults), fn, "out->struct_size ",
             out->struct_size, " != sizeof(kiln_model_defaults) ", sizeof(kiln_model_defaults));
    out->width = m->defaults.width;
    out->height = m->defaults.height;
    out->steps = m->defaults.steps;
    out->guidance_scale = m->defaults.guidance_scale;
    out->sampler = m->defaults.sampler.c_str();
    out->size_multiple = m->defaults.size_multiple;
  });
}

KILN_API const char* const* kiln_sampler_names(void) {
  static const char* const* list = name_list(pipelines::samplers::sampler_names());
  return list;
}

KILN_API const char* const* kiln_schedule_names(void) {
  static const char* const* list = name_list(pipelines::samplers::schedule_names());
  return list;
}

KILN_API kiln_render_params kiln_render_default_params(void) {
  kiln_render_params p{};
  p.struct_size = sizeof(kiln_render_params);
  p.guidance_scale = -1.f;
  p.batch = 1;
  return p;
}

KILN_API kiln_status kiln_render(kiln_model* m, const kiln_render_params* params,
                                 kiln_images** out) {
  return capi::guard([&] {
    const char* fn = "kiln_render";
    capi::need(m, fn, "m");
    capi::need(params, fn, "params");
    capi::need(out, fn, "out");
    *out = nullptr;
    KILN_ARG(params->struct_size == sizeof(kiln_render_params), fn, "params->struct_size ",
             params->struct_size, " != sizeof(kiln_render_params) ", sizeof(kiln_render_params));
    const kiln_render_params& p = *params;
    const pipelines::ImageDefaults& d = m->defaults;
    KILN_ARG(p.width >= 0 && p.height >= 0 && p.width <= 16384 && p.height <= 16384, fn,
             "size ", p.width, "x", p.height, " out of range [0, 16384]");
    KILN_ARG(p.steps >= 0 && p.steps <= 10000, fn, "steps ", p.steps, " out of range [0, 10000]");
    KILN_ARG(p.batch >= 0 && p.batch <= 64, fn, "batch ", p.batch, " out of range [0, 64]");
    KILN_ARG(std::isfinite(p.guidance_scale) && p.guidance_scale <= 100.f, fn, "guidance_scale ",
             p.guidance_scale, " out of range (at most 100)");
    KILN_ARG(std::isfinite(p.eta) && p.eta >= 0.f && p.eta <= 1.f, fn, "eta ", p.eta,
             " out of range [0, 1]");
    pipelines::recipes::ImageRequest req;
    req.prompt = p.prompt ? p.prompt : "";
    req.negative_prompt = p.negative_prompt ? p.negative_prompt : "";
    req.width = p.width ? p.width : d.width;
    req.height = p.height ? p.height : d.height;
    req.steps = p.steps ? p.steps : d.steps;
    req.guidance_scale = p.guidance_scale < 0.f ? d.guidance_scale : p.guidance_scale;
    req.seed = p.seed;
    req.batch = p.batch ? p.batch : 1;
    req.sampler = p.sampler ? p.sampler : d.sampler;
    req.schedule = p.schedule ? p.schedule : "default";
    req.eta = p.eta;
    if (p.init_image) {
      KILN_ARG(p.init_width > 0 && p.init_height > 0 && p.init_width <= 16384 &&
                   p.init_height <= 16384,
               fn, "init image size ", p.init_width, "x", p.init_height, " out of range");
      KILN_ARG((p.width == 0 || p.width == p.init_width) && (p.height == 0 || p.height == p.init_height),
               fn, "width/height ", p.width, "x", p.height, " differ from the init image's ",
               p.init_width, "x", p.init_height, " (leave them 0)");
      req.width = p.init_width;
      req.height = p.init_height;
      pipelines::ImageU8 img;
      img.width = p.init_width;
      img.height = p.init_height;
      img.channels = 3;
      img.pixels.assign(p.init_image, p.init_image + static_cast<size_t>(img.width) * img.height * 3);
      req.init_image = pipelines::image_to_tensor(img).unsqueeze(0);  // (1, 3, H, W) in [-1, 1]
      if (p.mask) {
        Tensor m = Tensor::empty({1, 1, p.init_height, p.init_width}, DType::f32);
        float* mp = m.mutable_data<float>();
        for (int64_t i = 0; i < m.numel(); ++i) mp[i] = p.mask[i] / 255.f;  // diffusers: mask / 255
        req.mask = m;
      }
      KILN_ARG(std::isfinite(p.strength) && p.strength >= 0.0 && p.strength <= 1.0, fn,
               "strength ", p.strength, " out of range (0, 1]");
      req.strength = p.strength > 0.0 ? p.strength : (p.mask ? 1.0 : 0.8);
    } else {
      KILN_ARG(!p.mask, fn, "a mask needs an init image");
    }
    KILN_ARG(req.width % d.size_multiple == 0 && req.height % d.size_multiple == 0, fn, "size ",
             req.width, "x", req.height, " is not a multiple of ", d.size_multiple,
             " (the model's latent factor)");
    std::atomic<bool> cancel{false};
    req.cancel = &cancel;
    if (p.progress) {
      kiln_progress_callback cb = p.progress;
      void* ud = p.user_data;
      req.progress = [cb, ud, &cancel](int step, int total) {
        if (cb(step, total, ud) != 0) cancel.store(true);
      };
    }
    Tensor images = m->pipeline->generate(req);  // (B, 3, H, W) in [-1, 1]
    auto result = std::make_unique<kiln_images>();
    for (int64_t i = 0; i < images.size(0); ++i)
      result->images.push_back(pipelines::tensor_to_image(images.select(0, i), -1.f, 1.f));
    *out = result.release();
  });
}

KILN_API size_t kiln_images_count(const kiln_images* images) {
  return images ? images->images.size() : 0;
}

KILN_API kiln_status kiln_images_get(const kiln_images* images, size_t index, int* width,
                                     int* height, int* channels, const uint8_t** pixels) {
  return capi::guard([&] {
    const char* fn = "kiln_images_get";
    capi::need(images, fn, "images");
    KILN_ARG(index < images->images.size(), fn, "index ", index, " out of range (",
             images->images.size(), " images)");
    const auto& img = images->images[index];
    if (width) *width = img.width;
    if (height) *height = img.height;
    if (channels) *channels = img.channels;
    if (pixels) *pixels = img.pixels.data();
  });
}

KILN_API void kiln_images_free(kiln_images* images) { delete images; }

}  // extern "C"
