// WeightSource: a read-only set of named tensors (one safetensors file, a sharded set, later
// GGUF), and open_weights(), which finds the weights behind a path the user gave.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln::io {

struct TensorInfo {
  DType dtype = DType::f32;
  Shape shape;
  std::filesystem::path file;  // the file that holds it
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual std::vector<std::string> names() const = 0;  // sorted
  virtual bool has(std::string_view name) const = 0;
  // Both throw Status::not_found naming the tensor and the source when `name` is absent.
  virtual TensorInfo info(std::string_view name) const = 0;
  virtual Tensor get(std::string_view name) const = 0;
  // What the source is, for messages: a path.
  virtual std::string describe() const = 0;
};

// Opens the weights at `path`:
//  - a file ending in ".safetensors": that file;
//  - a file ending in ".index.json": a sharded set (ShardedWeights);
//  - a directory: it must hold diffusion_pytorch_model.safetensors, model.safetensors, or one
//    of their ".index.json" forms. A single file is preferred over an index of the same stem;
//    two different stems (or none at all) is an error listing what the directory holds.
// Throws Status::not_found (nothing there), format_error (a malformed file) or
// invalid_argument (ambiguous directory, unrecognised file type).
std::shared_ptr<WeightSource> open_weights(const std::filesystem::path& path);

}  // namespace kiln::io

namespace kiln::io {

// "a, b, c and 17 more": the first `limit` names of a list for an error message.
std::string join_names(const std::vector<std::string>& names, size_t limit = 20);

}  // namespace kiln::io
