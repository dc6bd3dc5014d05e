#include "kiln/core/error.hpp"

namespace kiln {

const char* status_name(Status s) noexcept {
  switch (s) {
    case Status::ok: return "ok";
    case Status::invalid_argument: return "invalid argument";
    case Status::not_found: return "not found";
    case Status::io_error: return "I/O error";
    case Status::format_error: return "format error";
    case Status::unsupported: return "unsupported";
    case Status::out_of_memory: return "out of memory";
    case Status::internal: return "internal error";
    case Status::cancelled: return "cancelled";
    case Status::device_error: return "device error";
  }
  return "unknown status";
}

}  // namespace kiln
