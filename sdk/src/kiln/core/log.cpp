#include "kiln/core/log.hpp"

#include <cstdio>

namespace kiln {

const char* log_level_name(LogLevel l) noexcept {
  switch (l) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    case LogLevel::off: return "off";
  }
  return "?";
}

LogLevel parse_log_level(std::string_view s) {
  for (int i = 0; i <= static_cast<int>(LogLevel::off); ++i) {
    auto l = static_cast<LogLevel>(i);
    if (s == log_level_name(l)) return l;
  }
  fail(Status::invalid_argument,
       str("unknown log level '", s, "' (expected debug, info, warn, error or off)"), "log");
}

void Logger::write(LogLevel l, std::string_view msg) const {
  if (!enabled(l)) return;
  if (sink_) {
    sink_(l, msg);
    return;
  }
  std::fprintf(stderr, "kiln %s: %.*s\n", log_level_name(l), static_cast<int>(msg.size()),
               msg.data());
}

}  // namespace kiln
