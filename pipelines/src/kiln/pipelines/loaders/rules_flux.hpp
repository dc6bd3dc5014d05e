// Flux.1 transformer single files (BFL layout); see rules_flux.cpp.
#pragma once

#include "kiln/pipelines/loaders/family.hpp"

namespace kiln::pipelines::loaders::flux {

// BFL -> diffusers FluxTransformer2DModel names (prefix already removed).
RenameTable rules();

}  // namespace kiln::pipelines::loaders::flux
