// kiln CLI subcommands. Each registers its options on a CLI11 subcommand and runs through the
// public C++ API (kiln/kiln.hpp) only.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "kiln/kiln.hpp"

namespace kiln::cli {

struct GlobalOptions {
  int threads = 0;
  std::string log_level = "warn";
};

// Creates the runtime from the global options (threads, log level).
Runtime make_runtime(const GlobalOptions& g);

// Each returns the action to run when its subcommand was chosen.
std::function<int()> add_info(CLI::App& app, const GlobalOptions& g);
std::function<int()> add_inspect(CLI::App& app, const GlobalOptions& g);
std::function<int()> add_noise(CLI::App& app, const GlobalOptions& g);
std::function<int()> add_render(CLI::App& app, const GlobalOptions& g);
std::function<int()> add_run_component(CLI::App& app, const GlobalOptions& g);
std::function<int()> add_bench(CLI::App& app, const GlobalOptions& g);

}  // namespace kiln::cli
