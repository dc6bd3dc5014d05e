#include <cstdio>

#include "commands.hpp"

namespace kiln::cli {

std::function<int()> add_info(CLI::App& app, const GlobalOptions& g) {
  app.add_subcommand("info", "Show the build, CPU threads, GEMM library and devices");
  return [&g] {
    Runtime rt = make_runtime(g);
    std::printf("kiln %s\n%s", kiln_version(), rt.build_info().c_str());
    int n = rt.device_count(KILN_DEVICE_CUDA);
    std::printf("cuda_devices=%d\n", n);
    for (int i = 0; i < n; ++i)
      std::printf("cuda:%d=%s\n", i, rt.device_name(KILN_DEVICE_CUDA, i).c_str());
    return 0;
  };
}

}  // namespace kiln::cli
