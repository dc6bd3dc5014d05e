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
  // Images (batch, 3, H, W) in [-1, 1].
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

// Loads and binds every component (errors name the component and file).
std::unique_ptr<ImagePipeline> load_image_pipeline(const std::filesystem::path& folder);

}  // namespace kiln::pipelines
