// kiln inspect PATH: what a weight file, sharded index, component folder or pipeline folder holds.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "commands.hpp"

namespace kiln::cli {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + ")";
}
std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}
}  // namespace

void print_summary(const std::string& label, const Weights& w, size_t show, bool files_line);

std::function<int()> add_inspect(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand("inspect", "List the tensors of a weight file or folder");
  struct Opts {
    std::string path;
    bool all = false;
    size_t limit = 20;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("path", o->path, ".safetensors file, *.safetensors.index.json, or a folder")
      ->required();
  cmd->add_flag("--all", o->all, "List every tensor (default: the first --limit)");
  cmd->add_option("--limit", o->limit, "Tensors to list without --all")
      ->check(CLI::NonNegativeNumber);
  return [&g, o] {
    Runtime rt = make_runtime(g);
    namespace fs = std::filesystem;
    if (fs::is_directory(o->path) && fs::exists(fs::path(o->path) / "model_index.json")) {
      // A pipeline folder: its family, then every component that holds weights.
      std::printf("%s\n  pipeline family: %s\n", o->path.c_str(), detect_family(o->path).c_str());
      std::vector<fs::path> dirs;
      for (const auto& e : fs::directory_iterator(o->path))
        if (e.is_directory()) dirs.push_back(e.path());
      std::sort(dirs.begin(), dirs.end());
      for (const auto& d : dirs) {
        try {
          Weights w(rt, d.string());
          print_summary(d.filename().string(), w, 0, false);
        } catch (const kiln::Exception& e) {
          if (e.status() != KILN_ERR_NOT_FOUND) throw;  // tokenizer/, scheduler/: no weights
          std::printf("  %s: no weights\n", d.filename().c_str());
        }
      }
      return 0;
    }
    Weights w(rt, o->path);
    print_summary(o->path, w, o->all ? SIZE_MAX : o->limit, true);
    // An original-layout checkpoint (model.diffusion_model.*, double_blocks.*, joint_blocks.*):
    // what kiln detects in it. Other files (a component's weights, a latent) have no family.
    if (!fs::is_directory(o->path)) {
      try {
        std::printf("%s", describe_checkpoint(o->path).c_str());
      } catch (const kiln::Exception& e) {
        if (e.status() != KILN_ERR_FORMAT) throw;
      }
    }
    return 0;
  };
}

void print_summary(const std::string& label, const Weights& w, size_t show, bool files_line) {
  const size_t n = w.size();
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_dtype;  // dtype -> (params, bytes)
  std::map<std::string, size_t> files;
  uint64_t params = 0, bytes = 0;
  std::vector<TensorInfo> infos;
  for (size_t i = 0; i < n; ++i) {
    TensorInfo t = w.info(i);
    auto& d = by_dtype[t.dtype];
    d.first += static_cast<uint64_t>(t.numel());
    d.second += t.nbytes;
    params += static_cast<uint64_t>(t.numel());
    bytes += t.nbytes;
    files[t.file]++;
    infos.push_back(std::move(t));
  }
  std::printf("%s%s  tensors: %zu in %zu file(s), parameters: %llu (%s)\n",
              files_line ? label.c_str() : ("  " + label + ":").c_str(), files_line ? "\n" : "", n,
              files.size(), static_cast<unsigned long long>(params), human_bytes(bytes).c_str());
  for (const auto& [dt, pb] : by_dtype)
    std::printf("%s%-8s %llu parameters, %s\n", files_line ? "  " : "      ", dt.c_str(),
                static_cast<unsigned long long>(pb.first), human_bytes(pb.second).c_str());
  show = std::min(n, show);
  for (size_t i = 0; i < show; ++i)
    std::printf("  %-60s %-8s %s\n", infos[i].name.c_str(), infos[i].dtype.c_str(),
                shape_str(infos[i].shape).c_str());
  if (show < n && files_line) std::printf("  ... %zu more (use --all)\n", n - show);
}

}  // namespace kiln::cli
