// C ABI: benchmark workloads (`kiln bench`), implemented in kiln::pipelines::bench.
#include <cstring>
#include <string>

#include "capi_common.hpp"
#include "kiln/pipelines/bench.hpp"

using namespace kiln;

namespace {

void write_out(const std::string& s, char* buf, size_t size, const char* fn) {
  capi::need(buf, fn, "buf");
  KILN_ARG(size > s.size(), fn, "buffer of ", size, " bytes is too small for ", s.size() + 1);
  std::memcpy(buf, s.c_str(), s.size() + 1);
}

}  // namespace

extern "C" {

KILN_API kiln_status kiln_bench_run(kiln_runtime* rt, const char* spec_json, char* result_json,
                                    size_t result_size) {
  return capi::guard([&] {
    const char* fn = "kiln_bench_run";
    capi::need(rt, fn, "rt");
    capi::need(spec_json, fn, "spec_json");
    capi::need(result_json, fn, "result_json");
    const pipelines::bench::Spec spec = pipelines::bench::parse_spec(spec_json);
    rt->logger.info("bench: ", spec.workload, " on ", spec.device.str(), ", ",
                    dtype_name(spec.dtype), ", ", spec.warmup, " warm-up + ", spec.iters,
                    " iterations");
    write_out(pipelines::bench::run(spec).dump(), result_json, result_size, fn);
  });
}

KILN_API kiln_status kiln_bench_workloads(char* buf, size_t buf_size) {
  return capi::guard([&] {
    nlohmann::json j = nlohmann::json::object();
    for (const std::string& w : pipelines::bench::workload_names())
      j[w] = pipelines::bench::workload_defaults(w);
    write_out(j.dump(), buf, buf_size, "kiln_bench_workloads");
  });
}

}  // extern "C"
