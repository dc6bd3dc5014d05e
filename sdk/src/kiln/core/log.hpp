// Logging. There is no process-global sink: a Logger is owned by whoever runs work (the
// runtime object of the C ABI, a test) and passed down; the default writes to stderr.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "kiln/core/error.hpp"

namespace kiln {

enum class LogLevel : int { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

const char* log_level_name(LogLevel l) noexcept;
// Parses "debug" | "info" | "warn" | "error" | "off"; throws invalid_argument otherwise.
LogLevel parse_log_level(std::string_view s);

class Logger {
 public:
  using Sink = std::function<void(LogLevel, std::string_view)>;
  Logger() = default;  // stderr sink, level info
  Logger(LogLevel level, Sink sink) : level_(level), sink_(std::move(sink)) {}

  LogLevel level() const { return level_; }
  void set_level(LogLevel l) { level_ = l; }
  bool enabled(LogLevel l) const { return l >= level_ && level_ != LogLevel::off; }

  void write(LogLevel l, std::string_view msg) const;
  template <typename... A> void debug(A&&... a) const { emit(LogLevel::debug, std::forward<A>(a)...); }
  template <typename... A> void info(A&&... a) const { emit(LogLevel::info, std::forward<A>(a)...); }
  template <typename... A> void warn(A&&... a) const { emit(LogLevel::warn, std::forward<A>(a)...); }
  template <typename... A> void error(A&&... a) const { emit(LogLevel::error, std::forward<A>(a)...); }

 private:
  template <typename... A>
  void emit(LogLevel l, A&&... a) const {
    if (enabled(l)) write(l, str(std::forward<A>(a)...));
  }
  LogLevel level_ = LogLevel::info;
  Sink sink_;
};

}  // namespace kiln
