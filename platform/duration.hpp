// Durations as users write them in configuration files: "500ms", "5s", "10m", "2h", "1h30m".
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy {

// One or more <integer><unit> parts, units ms, s, m, h, d, largest first ("1h30m"). A bare
// number is refused (its unit would be a guess). Errc::invalid_argument names the input.
[[nodiscard]] Expected<std::chrono::milliseconds> parse_duration(std::string_view text);

// The shortest form parse_duration reads back: "1h30m", "500ms", "0s".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace eddy
