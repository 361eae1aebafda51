// Log lines for journald: each line starts with a syslog priority prefix ("<3>", "<4>", ...)
// so `journalctl -p warning` works; outside journald the prefix is replaced by a level word
// when stderr is a terminal.
#pragma once

#include <string_view>

namespace eddy::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

void set_min_level(Level level);
// The level a configuration names: error | warning | notice | info | debug; info for anything
// else (configurations check the word when they are parsed).
Level level_named(std::string_view name);
void write(Level level, std::string_view message);

inline void error(std::string_view m) { write(Level::error, m); }
inline void warning(std::string_view m) { write(Level::warning, m); }
inline void notice(std::string_view m) { write(Level::notice, m); }
inline void info(std::string_view m) { write(Level::info, m); }
inline void debug(std::string_view m) { write(Level::debug, m); }

}  // namespace eddy::log
