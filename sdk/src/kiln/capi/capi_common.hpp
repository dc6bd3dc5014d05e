// Shared pieces of the C ABI implementation: the exception firewall and the runtime object.
#pragma once

#include <new>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/core/log.hpp"
#include "kiln/kiln.h"

struct kiln_runtime {
  kiln::Logger logger;
  int num_threads = 0;
};

namespace kiln::capi {

void set_last_error(std::string msg);
const char* last_error();

// Runs f, turning every exception into a status + thread-local message. Nothing escapes.
template <typename F>
kiln_status guard(F&& f) noexcept {
  try {
    f();
    return KILN_OK;
  } catch (const Error& e) {
    set_last_error(e.what());
    return static_cast<kiln_status>(e.code());
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return KILN_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string("internal error: ") + e.what());
    return KILN_ERR_INTERNAL;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return KILN_ERR_INTERNAL;
  }
}

// Throws invalid_argument naming the function and argument when p is null.
inline void need(const void* p, const char* fn, const char* arg) {
  if (!p) fail(Status::invalid_argument, str(arg, " is NULL"), fn);
}

}  // namespace kiln::capi
