// kiln-quality yardstick: renders held-out prompts with a candidate and a reference render
// configuration through kiln's public C++ API (kiln/kiln.hpp, as `kiln render` does), and
// reports prompt adherence of both plus PSNR/SSIM of candidate vs reference (README.md here).
#pragma once

#include <string>

namespace kiln::quality {

struct YardstickOptions {
  std::string model;      // diffusers pipeline folder
  std::string prompts;    // JSON lines from `kiln-quality prompts`
  std::string candidate;  // render config JSON (yardstick_config.hpp)
  std::string reference;  // render config JSON; empty = the model's defaults
  std::string out;        // output directory: candidate/, reference/, report.json
  int count = 0;          // first N prompts; 0 = all
  int size = 0;           // image side; 0 = the model's default width (must be square)
  int threads = 0;        // CPU threads; 0 = all cores
};

// Returns the process exit code; throws kiln::Error / kiln::Exception on bad inputs.
int run_yardstick(const YardstickOptions& o);

}  // namespace kiln::quality
