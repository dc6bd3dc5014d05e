// kiln bench: time workloads (ops, or component forwards at real configs with random weights)
// on one device and print ms, TFLOP/s and peak memory; --json writes the results for
// bench/torch_cuda_bench.py --kiln-json, which runs the same specs in PyTorch and prints the
// ratio. A benchmark, not a test: nothing here judges the numbers.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.hpp"

namespace kiln::cli {

namespace {

using nlohmann::json;

// "key=value" -> (key, value): an integer, true/false, or else the text (the library then says
// which type the parameter needs).
std::pair<std::string, json> parse_param(const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Exception(KILN_ERR_INVALID_ARGUMENT,
                    "--param expects key=value (e.g. -p heads=24), got '" + kv + "'");
  const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
  if (text == "true" || text == "false") return {key, text == "true"};
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return {key, v};
  } catch (const std::exception&) {
  }
  return {key, text};
}

std::string gib(const json& bytes) {
  if (!bytes.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes.get<double>() / (1024.0 * 1024 * 1024));
  return buf;
}

std::string num(const json& v, const char* fmt) {
  if (!v.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, v.get<double>());
  return buf;
}

void print_row(const json& r) {
  const bool cuda = r.contains("peak_allocated_bytes");
  std::printf("%-44s %10s %10s %9s %12s %12s\n", r["label"].get<std::string>().c_str(),
              num(r["median_ms"], "%.3f").c_str(), num(r["min_ms"], "%.3f").c_str(),
              num(r["tflops"], "%.3g").c_str(),
              gib(cuda ? r["peak_allocated_bytes"] : r["peak_rss_delta_bytes"]).c_str(),
              cuda ? gib(r["peak_reserved_bytes"]).c_str() : "-");
}

// Written next to the target and renamed over it, so a failed run leaves no partial file.
void write_json_file(const std::string& path, const json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(1) << "\n";
    if (!f.flush()) throw Exception(KILN_ERR_IO, "cannot write '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    throw Exception(KILN_ERR_IO, "cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
}

}  // namespace

std::function<int()> add_bench(CLI::App& app, const GlobalOptions& g) {
  auto* cmd = app.add_subcommand(
      "bench",
      "Time workloads with random weights at real configs: median/min ms, TFLOP/s, peak memory "
      "(a benchmark, compare with bench/torch_cuda_bench.py)");
  struct Opts {
    std::vector<std::string> workloads, params;
    std::string device = "cpu", dtype, json_path;
    int warmup = -1, iters = -1;
    bool list = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("workload", o->workloads,
                  "attention, gemm, conv2d, unet-sd15, unet-sdxl, flux, or 'all' (see --list)");
  cmd->add_option("-d,--device", o->device, "cpu, cuda or cuda:N");
  cmd->add_option("--dtype", o->dtype, "f32, bf16 or f16 (default: bf16 on CUDA, f32 on the CPU)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  cmd->add_option("--warmup", o->warmup, "untimed iterations first (default 3)")
      ->check(CLI::Range(0, 10000));
  cmd->add_option("-n,--iters", o->iters, "timed iterations (default 10)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("-p,--param", o->params,
                  "workload parameter key=value, repeatable (e.g. -p heads=24 -p seq=4608 -p "
                  "causal=true); --list shows them with their defaults");
  cmd->add_option("--json", o->json_path, "also write the results (and errors) to this file");
  cmd->add_flag("--list", o->list, "list the workloads and their parameters, then exit");
  return [&g, o] {
    const json defaults = json::parse(bench_workloads());
    if (o->list) {
      for (const auto& [name, params] : defaults.items())
        std::printf("%-10s %s\n", name.c_str(), params.dump().c_str());
      return 0;
    }
    std::vector<std::string> names;
    for (const std::string& w : o->workloads) {
      if (w == "all")
        for (const auto& [name, params] : defaults.items()) names.push_back(name);
      else
        names.push_back(w);
    }
    if (names.empty())
      throw Exception(KILN_ERR_INVALID_ARGUMENT,
                      "name a workload (attention, gemm, conv2d, unet-sd15, unet-sdxl, flux or "
                      "all); --list shows their parameters");
    json params = json::object();
    for (const std::string& kv : o->params) {
      auto [key, value] = parse_param(kv);
      params[key] = value;
    }
    Runtime rt = make_runtime(g);
    json results = json::array();
    int failed = 0;
    bool header = false;
    for (const std::string& name : names) {
      json spec = {{"workload", name}, {"device", o->device}};
      if (!o->dtype.empty()) spec["dtype"] = o->dtype;
      if (o->warmup >= 0) spec["warmup"] = o->warmup;
      if (o->iters >= 0) spec["iters"] = o->iters;
      if (!params.empty()) spec["params"] = params;
      try {
        json r = json::parse(bench_run(rt, spec.dump()));
        if (!header) {
          std::printf(
              "kiln bench: %s (%s), %s, %d warm-up + %d timed iterations\n",
              r["device"].get<std::string>().c_str(), r["device_name"].get<std::string>().c_str(),
              r["dtype"].get<std::string>().c_str(), r["warmup"].get<int>(), r["iters"].get<int>());
          std::printf("%-44s %10s %10s %9s %12s %12s\n", "workload", "median ms", "min ms",
                      "TFLOP/s", r.contains("peak_allocated_bytes") ? "peak alloc" : "peak RSS+",
                      r.contains("peak_allocated_bytes") ? "peak reserv" : "");
          header = true;
        }
        print_row(r);
        std::fflush(stdout);
        results.push_back(std::move(r));
      } catch (const Exception& e) {
        ++failed;
        std::fprintf(stderr, "kiln bench: %s: error: %s (%s)\n", name.c_str(), e.what(),
                     kiln_status_name(e.status()));
        results.push_back({{"workload", name},
                           {"spec", spec},
                           {"error", e.what()},
                           {"status", kiln_status_name(e.status())}});
      }
    }
    if (!o->json_path.empty()) {
      write_json_file(o->json_path, {{"tool", "kiln bench"},
                                     {"kiln_version", kiln_version()},
                                     {"device", o->device},
                                     {"build_info", rt.build_info()},
                                     {"results", results}});
      std::printf("wrote %s\n", o->json_path.c_str());
    }
    return failed ? 1 : 0;
  };
}

}  // namespace kiln::cli
