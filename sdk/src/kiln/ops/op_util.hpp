// Small helpers shared by the CPU op implementations (not part of the op API in ops.hpp).
#pragma once

#include "kiln/ops/ops.hpp"

namespace kiln::ops {

// torch.nn.functional.pad's name for a mode ("constant", "reflect", "replicate", "circular"),
// for messages; conv names its non-zero pad_mode the same way.
inline const char* pad_mode_name(PadMode m) {
  switch (m) {
    case PadMode::zeros:
      return "constant";
    case PadMode::reflect:
      return "reflect";
    case PadMode::replicate:
      return "replicate";
    case PadMode::circular:
      return "circular";
  }
  return "?";
}

}  // namespace kiln::ops
