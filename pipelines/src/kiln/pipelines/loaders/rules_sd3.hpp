// SD3 / SD3.5 MMDiT single files (Stability layout); see rules_sd3.cpp.
#pragma once

#include "kiln/pipelines/loaders/family.hpp"

namespace kiln::pipelines::loaders::sd3 {

// MMDiT -> diffusers SD3Transformer2DModel names for a model of `num_layers` joint blocks (the
// last block's context branch is pre-only and its modulation order differs).
RenameTable rules(int num_layers);

}  // namespace kiln::pipelines::loaders::sd3
