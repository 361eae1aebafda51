// Sizes as people write them in configuration and releases: "512MiB", "2GB", "64k", "1000".
#pragma once

#include <cstdint>
#include <string_view>

#include "platform/error.hpp"

namespace eddy {

// A number of bytes with an optional unit (b, k/kb, kib, m/mb, mib, g/gb, gib, t/tb, tib; any
// case). Errc::invalid_argument quoting the text when it does not parse or overflows.
[[nodiscard]] Expected<std::uint64_t> parse_byte_size(std::string_view text);

}  // namespace eddy
