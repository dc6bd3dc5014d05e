// kiln::Error — the one exception type of the runtime. Every failure a user can cause
// (bad file, bad shape, unsupported dtype, out of memory) is reported through it with a
// status code, a message and a context (which op / file / tensor), and is turned into a
// status code + thread-local last error at the C ABI boundary (capi.cpp).
#pragma once

#include <cstdint>
#include <exception>
#include <sstream>
#include <string>
#include <utility>

namespace kiln {

// Keep in sync with kiln_status in sdk/include/kiln/kiln.h (static_asserts in capi.cpp).
enum class Status : int {
  ok = 0,
  invalid_argument = 1,  // a value the caller passed is wrong (shape, dtype, range)
  not_found = 2,         // file, tensor key or component missing
  io_error = 3,          // open/read/write/mmap failed
  format_error = 4,      // a file exists but its content is malformed
  unsupported = 5,       // valid request this build or device cannot do
  out_of_memory = 6,
  internal = 7,  // a bug in kiln: an invariant broke
  cancelled = 8,
  device_error = 9,  // the accelerator runtime reported an error
};

const char* status_name(Status s) noexcept;

class Error : public std::exception {
 public:
  Error(Status code, std::string message, std::string context = {})
      : code_(code), message_(std::move(message)), context_(std::move(context)) {
    // Built with append(): GCC 12 misreports operator+ chains here under -Wrestrict.
    if (!context_.empty()) what_.append("[").append(context_).append("] ");
    what_.append(message_);
  }
  Status code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& context() const noexcept { return context_; }
  const char* what() const noexcept override { return what_.c_str(); }

  // Adds an outer context: "[outer] [inner] message". Used when a loader re-throws a
  // tensor-level error with the file name.
  Error with_context(const std::string& outer) const {
    return Error(code_, what_, outer);
  }

 private:
  Status code_;
  std::string message_, context_, what_;
};

// Concatenates anything streamable: str("got ", n, " dims"). (GCC 12 has no <format>.)
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

[[noreturn]] inline void fail(Status code, std::string message, std::string context = {}) {
  throw Error(code, std::move(message), std::move(context));
}

}  // namespace kiln

// KILN_CHECK(cond, status, context, message parts...): throws kiln::Error when cond is false.
#define KILN_CHECK(cond, status, ctx, ...)                          \
  do {                                                              \
    if (!(cond)) ::kiln::fail((status), ::kiln::str(__VA_ARGS__), (ctx)); \
  } while (0)

// Argument validation inside an op: KILN_ARG(cond, "rms_norm", "weight has ", n, " dims").
#define KILN_ARG(cond, ctx, ...) KILN_CHECK(cond, ::kiln::Status::invalid_argument, ctx, __VA_ARGS__)
