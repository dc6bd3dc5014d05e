// Ground truth made to look like a small model's output, for measuring the reader's robustness:
// gaussian blur, a global color shift, additive gaussian noise — in that order, then rounded and
// clamped. Deterministic in `seed` (std::mt19937_64 + Box-Muller, no std::*_distribution).
#pragma once

#include <cstdint>

#include "scenes.hpp"

namespace kiln::quality {

struct DegradeOptions {
  double blur_sigma = 0.7;   // pixels
  double noise_sigma = 8.0;  // per channel, 0..255 units
  double shift = 10.0;       // per channel +-shift, sign drawn per channel, 0..255 units
};

data::ImageU8 degrade(const data::ImageU8& img, uint64_t seed, const DegradeOptions& o = {});

}  // namespace kiln::quality
