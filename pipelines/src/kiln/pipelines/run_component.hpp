// Runs one model component on tensors from a safetensors file and writes its outputs to
// another — for checking a conversion or a port against the reference, tensor by tensor
// (`kiln run-component`). The component's config.json `_class_name` picks the model; inputs are
// found by the reference forward's argument names.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::pipelines {

struct RunComponentOptions {
  std::string prefix;  // read "<prefix><name>" (e.g. "cfg." in a golden file of several cases)
  std::string mode;    // AutoencoderKL: "decode" (default) or "encode"
};

// Returns the names of the tensors written. Throws not_found listing the inputs the component
// needs when one is missing, unsupported for a component class kiln does not run.
std::vector<std::string> run_component(const std::filesystem::path& component_dir,
                                       const std::filesystem::path& inputs,
                                       const std::filesystem::path& outputs,
                                       const RunComponentOptions& opt = {});

}  // namespace kiln::pipelines
