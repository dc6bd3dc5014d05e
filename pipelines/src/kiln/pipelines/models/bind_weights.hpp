// One way for every model to take its weights: strict binding (io::bind) with float weights
// widened once to the compute dtype, and errors that name the config the model was built from.
#pragma once

#include <filesystem>

#include "kiln/core/dtype.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/weight_source.hpp"

namespace kiln::pipelines::models {

// io::bind(m, weights) with BindOptions{float_dtype, key_map}. A binding error (missing,
// unexpected or mismatched keys) is rethrown with the context "<config_file> vs weights", so
// the message says which config the weights failed to fit.
void bind_weights(io::Module& m, const io::WeightSource& weights,
                  const std::filesystem::path& config_file, const io::KeyMap* key_map = nullptr,
                  DType float_dtype = DType::f32);

}  // namespace kiln::pipelines::models
