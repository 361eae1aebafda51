// The device's token for the hub (hub.token_file). On its own so that configuration checks need
// neither the HTTP client nor TLS.
#pragma once

#include <filesystem>
#include <string>

#include "platform/error.hpp"

namespace eddy::ota {

// Read a token file: its content without surrounding white space. Errc::invalid_argument when
// it is empty, or holds white space or control characters inside (not one token).
Expected<std::string> read_token(const std::filesystem::path& file);

}  // namespace eddy::ota
