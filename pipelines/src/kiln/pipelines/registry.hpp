// The family registry: which pipeline a diffusers folder is, and the loaders that turn it into an
// ImagePipeline. A new family adds one entry here and its own recipe files; nothing else changes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"

namespace kiln::pipelines {

struct ImageDefaults {
  int width = 512, height = 512, steps = 20;
  float guidance_scale = 7.5f;
  std::string sampler = "euler";
  int size_multiple = 8;  // width/height must be multiples of this
};

class ImagePipeline {
 public:
  virtual ~ImagePipeline() = default;
  virtual const std::string& family() const = 0;
  virtual ImageDefaults defaults() const = 0;
  // Where the weights live and the denoising runs (PipelineLoadOptions::device).
  virtual Device device() const = 0;
  // Images (batch, 3, H, W) in [-1, 1], on the CPU (copied back from the device). The request's
  // init image and mask may be on any device.
  virtual Tensor generate(const recipes::ImageRequest& req) const = 0;
};

struct FamilyInfo {
  std::string name;            // "sd1", "sdxl", "sd3", "flux"
  std::string pipeline_class;  // diffusers' model_index.json _class_name
};
const std::vector<FamilyInfo>& families();

// The family of a diffusers folder, from model_index.json. Throws unsupported naming the class
// for a pipeline kiln does not know.
const FamilyInfo& detect_family(const std::filesystem::path& folder);

struct PipelineLoadOptions {
  // The models' weights are bound on the CPU (mapped, zero-copy) and then copied here; a device
  // that does not exist is invalid_argument ("device cuda:7 does not exist (1 cuda device(s)
  // present)") before any weight is read; a CPU-only build has 0 CUDA devices.
  Device device = Device::cpu();
};

// Loads and binds every component (errors name the component and file).
std::unique_ptr<ImagePipeline> load_image_pipeline(const std::filesystem::path& folder,
                                                   const PipelineLoadOptions& options = {});

}  // namespace kiln::pipelines
