// C ABI: version, status names, last error, runtime.
#include <cstddef>
#include <cstring>
#include <memory>
#include <sstream>

#include "capi_common.hpp"
#include "kiln/core/device.hpp"
#include "kiln/core/parallel.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/ops/gemm.hpp"

using namespace kiln;

static_assert(KILN_OK == static_cast<int>(Status::ok));
static_assert(KILN_ERR_INVALID_ARGUMENT == static_cast<int>(Status::invalid_argument));
static_assert(KILN_ERR_NOT_FOUND == static_cast<int>(Status::not_found));
static_assert(KILN_ERR_IO == static_cast<int>(Status::io_error));
static_assert(KILN_ERR_FORMAT == static_cast<int>(Status::format_error));
static_assert(KILN_ERR_UNSUPPORTED == static_cast<int>(Status::unsupported));
static_assert(KILN_ERR_OUT_OF_MEMORY == static_cast<int>(Status::out_of_memory));
static_assert(KILN_ERR_INTERNAL == static_cast<int>(Status::internal));
static_assert(KILN_ERR_CANCELLED == static_cast<int>(Status::cancelled));
static_assert(KILN_ERR_DEVICE == static_cast<int>(Status::device_error));
static_assert(KILN_MAX_DIMS == kMaxDims);

namespace kiln::capi {
namespace {
thread_local std::string t_last_error;
}
void set_last_error(std::string msg) { t_last_error = std::move(msg); }
const char* last_error() { return t_last_error.c_str(); }
}  // namespace kiln::capi

namespace {

void copy_out(const std::string& s, char* buf, size_t size, const char* fn) {
  capi::need(buf, fn, "buf");
  KILN_ARG(size > s.size(), fn, "buffer of ", size, " bytes is too small for ", s.size() + 1);
  std::memcpy(buf, s.c_str(), s.size() + 1);
}

DeviceType device_type(kiln_device_type t, const char* fn) {
  switch (t) {
    case KILN_DEVICE_CPU: return DeviceType::cpu;
    case KILN_DEVICE_CUDA: return DeviceType::cuda;
  }
  fail(Status::invalid_argument, str("unknown device type ", static_cast<int>(t)), fn);
}

}  // namespace

extern "C" {

KILN_API const char* kiln_version(void) { return KILN_VERSION_STRING; }

KILN_API const char* kiln_status_name(kiln_status status) {
  int s = static_cast<int>(status);
  if (s < 0 || s > static_cast<int>(Status::device_error)) return "unknown status";
  return status_name(static_cast<Status>(s));
}

KILN_API const char* kiln_last_error(void) { return capi::last_error(); }

KILN_API kiln_runtime_params kiln_runtime_default_params(void) {
  kiln_runtime_params p{};
  p.struct_size = sizeof(kiln_runtime_params);
  p.num_threads = 0;
  p.log_level = KILN_LOG_INFO;
  p.log = nullptr;
  p.log_user_data = nullptr;
  return p;
}

KILN_API kiln_status kiln_runtime_create(const kiln_runtime_params* params, kiln_runtime** out) {
  return capi::guard([&] {
    capi::need(out, "kiln_runtime_create", "out");
    *out = nullptr;
    kiln_runtime_params p = kiln_runtime_default_params();
    if (params) {
      // Older callers pass a smaller struct: read only the fields they know.
      KILN_ARG(params->struct_size >= offsetof(kiln_runtime_params, num_threads) + sizeof(int) &&
                   params->struct_size <= sizeof(kiln_runtime_params),
               "kiln_runtime_create", "params->struct_size ", params->struct_size,
               " is not a known kiln_runtime_params size (", sizeof(kiln_runtime_params), ")");
      std::memcpy(&p, params, params->struct_size);
    }
    KILN_ARG(p.num_threads >= 0 && p.num_threads <= 4096, "kiln_runtime_create",
             "num_threads ", p.num_threads, " out of range [0, 4096]");
    KILN_ARG(p.log_level >= KILN_LOG_DEBUG && p.log_level <= KILN_LOG_OFF, "kiln_runtime_create",
             "unknown log level ", static_cast<int>(p.log_level));
    auto rt = std::make_unique<kiln_runtime>();
    rt->num_threads = p.num_threads;
    Logger::Sink sink;
    if (p.log) {
      kiln_log_callback cb = p.log;
      void* ud = p.log_user_data;
      sink = [cb, ud](LogLevel l, std::string_view m) {
        std::string msg(m);
        cb(static_cast<kiln_log_level>(l), msg.c_str(), ud);
      };
    }
    rt->logger = Logger(static_cast<LogLevel>(p.log_level), std::move(sink));
    // OpenMP's team size is per process; the runtime applies its choice when created.
    set_num_threads(p.num_threads);
    rt->logger.debug("runtime created: ", num_threads(), " threads, GEMM ",
                     ops::gemm_backend_name(ops::gemm_backend()));
    *out = rt.release();
  });
}

KILN_API void kiln_runtime_free(kiln_runtime* rt) { delete rt; }

KILN_API kiln_status kiln_runtime_device_count(const kiln_runtime* rt, kiln_device_type type,
                                               int* out) {
  return capi::guard([&] {
    capi::need(rt, "kiln_runtime_device_count", "rt");
    capi::need(out, "kiln_runtime_device_count", "out");
    *out = backend_for(device_type(type, "kiln_runtime_device_count")).device_count();
  });
}

KILN_API kiln_status kiln_runtime_device_name(const kiln_runtime* rt, kiln_device_type type,
                                              int index, char* buf, size_t buf_size) {
  return capi::guard([&] {
    capi::need(rt, "kiln_runtime_device_name", "rt");
    Device d{device_type(type, "kiln_runtime_device_name"), index};
    check_device(d);
    copy_out(backend_for(d).describe(index), buf, buf_size, "kiln_runtime_device_name");
  });
}

KILN_API kiln_status kiln_runtime_build_info(const kiln_runtime* rt, char* buf, size_t buf_size) {
  return capi::guard([&] {
    capi::need(rt, "kiln_runtime_build_info", "rt");
    std::ostringstream os;
    os << "version=" << KILN_VERSION_STRING << "\n";
#ifdef KILN_HAVE_CUDA
    os << "cuda=on\n";
#else
    os << "cuda=off\n";
#endif
    os << "gemm=" << ops::gemm_backend_name(ops::gemm_backend()) << "\n";
    os << "gemm_available=";
    bool first = true;
    for (auto b : {ops::GemmBackend::kiln, ops::GemmBackend::openblas, ops::GemmBackend::onednn}) {
      if (!ops::gemm_backend_available(b)) continue;
      os << (first ? "" : ",") << ops::gemm_backend_name(b);
      first = false;
    }
    os << "\nthreads=" << num_threads() << "\n";
    copy_out(os.str(), buf, buf_size, "kiln_runtime_build_info");
  });
}

}  // extern "C"
