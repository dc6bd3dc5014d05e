// kiln run-component: one component on tensors from a safetensors file, outputs to another —
// for checking a conversion against the reference implementation tensor by tensor.
#include <cstdio>

#include "commands.hpp"

namespace kiln::cli {

std::function<int()> add_run_component(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "run-component",
      "Run one component (unet, vae, text encoder, transformer) on tensors from a file");
  struct Opts {
    std::string dir, inputs, outputs, prefix, mode;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("component", o->dir, "Component folder (config.json + weights)")->required();
  cmd->add_option("-i,--inputs", o->inputs,
                  "safetensors with the forward's inputs (sample, timestep, encoder_hidden_states, "
                  "input_ids, latent, ...)")
      ->required();
  cmd->add_option("-o,--outputs", o->outputs, "safetensors to write the outputs to")->required();
  cmd->add_option("--prefix", o->prefix,
                  "Read '<prefix><name>' (a golden file holding several cases)");
  cmd->add_option("--mode", o->mode, "VAE: encode or decode (default)")
      ->check(CLI::IsMember({"encode", "decode"}));
  return [&g, o] {
    Runtime rt = make_runtime(g);
    check(kiln_component_run(rt.get(), o->dir.c_str(), o->inputs.c_str(), o->outputs.c_str(),
                             o->prefix.c_str(), o->mode.empty() ? nullptr : o->mode.c_str()));
    std::printf("wrote %s\n", o->outputs.c_str());
    return 0;
  };
}

}  // namespace kiln::cli
