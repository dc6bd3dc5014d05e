// kiln — batch render CLI: info, inspect (weight files and pipeline folders), noise (the
// seeded initial latent of a diffusers pipeline), render (text-to-image), run-component, bench.
#include <cstdio>
#include <vector>

#include "commands.hpp"

namespace kiln::cli {

Runtime make_runtime(const GlobalOptions& g) {
  kiln_runtime_params p = kiln_runtime_default_params();
  p.num_threads = g.threads;
  static const char* kLevels[] = {"debug", "info", "warn", "error", "off"};
  p.log_level = KILN_LOG_WARN;
  for (int i = 0; i < 5; ++i)
    if (g.log_level == kLevels[i]) p.log_level = static_cast<kiln_log_level>(i);
  return Runtime(p);
}

}  // namespace kiln::cli

int main(int argc, char** argv) {
  using namespace kiln::cli;
  CLI::App app{"kiln " KILN_VERSION_STRING " — diffusion and flow-matching generation"};
  app.require_subcommand(1);
  GlobalOptions g;
  app.add_option("--threads", g.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 4096));
  app.add_option("--log-level", g.log_level, "debug, info, warn, error or off")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}));
  std::vector<std::pair<CLI::App*, std::function<int()>>> cmds;
  auto reg = [&](auto add) {
    size_t before = app.get_subcommands({}).size();
    auto action = add(app, g);
    cmds.emplace_back(app.get_subcommands({})[before], std::move(action));
  };
  reg(add_info);
  reg(add_inspect);
  reg(add_noise);
  reg(add_render);
  reg(add_run_component);
  reg(add_bench);
  CLI11_PARSE(app, argc, argv);
  try {
    for (auto& [sub, action] : cmds)
      if (sub->parsed()) return action();
  } catch (const kiln::Exception& e) {
    std::fprintf(stderr, "kiln: error: %s (%s)\n", e.what(), kiln_status_name(e.status()));
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
