// The commit a fleet repository's branch points at, asked for without libgit2, so that eddyd's
// resident process can tell a poll that finds nothing new from one that must fetch, and start
// no update worker for the first (daemon/agent.cpp). It is a shortcut only: any error, and any
// transport it does not speak, means "ask the worker", which fetches and verifies as always.
//
// - file://: the repository's own files (the loose ref, then packed-refs), read plainly.
// - git:// and http://: the ref advertisement of Git's smart protocol (version 0/1, pkt-lines),
//   which every Git server sends before anything else: git-upload-pack's first answer, or
//   GET <url>/info/refs?service=git-upload-pack. Read strictly and within a size bound; then
//   the git:// conversation is ended with a flush (a client that wants nothing).
// - https:// and ssh://: Errc::unsupported (TLS would put mbedTLS into the resident process).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::ota {

// The most a ref advertisement may hold; a bigger one is Errc::too_large (the worker fetches).
inline constexpr std::size_t kMaxAdvertisementBytes = 1 << 20;

// The 40-hex commit id refs/heads/<branch> points at on `url`. Errors: Errc::unsupported (a
// transport or repository layout not read here), Errc::not_found (no such branch, no such
// repository), Errc::network (connection, HTTP status, the server's ERR line, a malformed
// advertisement), Errc::timeout (no answer within `timeout`), Errc::too_large,
// Errc::invalid_argument (a branch name that is not a plain Git branch name). Each message
// names the URL and the branch.
Expected<std::string> remote_tip(std::string_view url, std::string_view branch,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The id `ref` has in a smart-protocol ref advertisement (pkt-lines up to and including the
// flush that ends it); std::nullopt when the advertisement does not list it. `http`: the
// advertisement starts with the "# service=git-upload-pack" line and its flush. An
// advertisement that breaks the format is Errc::network saying where; a server's "ERR" line
// is Errc::network with its text. Exposed for tests.
Expected<std::optional<std::string>> ref_in_advertisement(std::string_view advertisement, std::string_view ref,
                                                          bool http);

}  // namespace eddy::ota
