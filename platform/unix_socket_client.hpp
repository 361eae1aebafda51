// The client side of UnixSocketServer, blocking: connect, send one request line, read one
// reply line. For the `eddy` command line and tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy {

// Errors: Errc::not_found (no socket file), Errc::network (nobody listening, connection
// closed before the reply), Errc::io (permission denied, ...), Errc::timeout, Errc::too_large.
// The reply is returned without its newline. timeout: none = wait as long as it takes.
[[nodiscard]] Expected<std::string> unix_socket_request(const std::filesystem::path& path, std::string_view line,
                                                        std::optional<std::chrono::milliseconds> timeout,
                                                        std::size_t max_reply = 64u << 20);

}  // namespace eddy
