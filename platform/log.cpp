#include "platform/log.hpp"

#include <unistd.h>

#include <atomic>
#include <initializer_list>
#include <cstdio>
#include <mutex>
#include <string>

namespace eddy::log {
namespace {
std::atomic<int> g_min_level{static_cast<int>(Level::info)};
std::mutex g_mutex;

const char* level_word(Level level) {
  switch (level) {
    case Level::error: return "error";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
  }
  return "info";
}
}  // namespace

void set_min_level(Level level) { g_min_level = static_cast<int>(level); }

Level level_named(std::string_view name) {
  for (Level level : {Level::error, Level::warning, Level::notice, Level::info, Level::debug})
    if (name == level_word(level)) return level;
  return Level::info;
}

void write(Level level, std::string_view message) {
  if (static_cast<int>(level) > g_min_level.load()) return;
  static const bool tty = isatty(STDERR_FILENO) == 1;
  std::string line;
  line.reserve(message.size() + 12);
  if (tty) {
    line += level_word(level);
    line += ": ";
  } else {
    line += '<';
    line += static_cast<char>('0' + static_cast<int>(level));
    line += '>';
  }
  // One record per line: embedded newlines would split a record in the journal.
  for (char c : message) line += (c == '\n') ? ' ' : c;
  line += '\n';
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace eddy::log
