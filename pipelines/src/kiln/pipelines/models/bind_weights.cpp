#include "kiln/pipelines/models/bind_weights.hpp"

#include "kiln/core/error.hpp"

namespace kiln::pipelines::models {

void bind_weights(io::Module& m, const io::WeightSource& weights,
                  const std::filesystem::path& config_file, const io::KeyMap* key_map,
                  DType float_dtype) {
  io::BindOptions opt;
  opt.float_dtype = float_dtype;
  opt.key_map = key_map;
  try {
    io::bind(m, weights, opt);
  } catch (const Error& e) {
    throw e.with_context(str(config_file.string(), " vs weights"));
  }
}

}  // namespace kiln::pipelines::models
