// One error type across Eddy: a code that tests and callers compare, and a message a person
// can act on (what failed, on which input, what to do), gaining context on its way up.
#pragma once

#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace eddy {

enum class Errc {
  invalid_argument,   // bad input from a user or a file: configuration, YAML, command line
  not_found,          // a file, key, release, commit or version that does not exist
  io,                 // a read, write, rename, fsync that failed
  no_space,           // ENOSPC / EDQUOT: the disk is full
  network,            // connect, DNS, HTTP status, Git transport
  timeout,            // an operation ran past its deadline
  process,            // a child process failed to start or exited non-zero
  database,           // SQLite
  // Trust: each refusal of a commit has its own code.
  unsigned_commit,
  unknown_key,
  bad_signature,
  key_not_allowed,
  not_descendant,
  // Payloads.
  digest_mismatch,
  too_large,
  unsafe_path,
  incompatible,
  conflict,           // the request is valid but the state does not allow it now
  unsupported,
  unauthorized,       // a server refused our credentials (the hub's 401/403)
  internal,           // a bug: an invariant did not hold (stays last: errc_from_name counts up to it)
};

std::string_view errc_name(Errc code);
// The code named `name` (errc_name's inverse), for errors that travel between processes.
std::optional<Errc> errc_from_name(std::string_view name);

struct [[nodiscard]] Error {
  Errc code;
  std::string message;

  // "context: message", as errors travel up ("install sensor-app 1.4.2: unpack: ...").
  [[nodiscard]] Error with_context(std::string_view context) const {
    return Error{code, std::string(context) + ": " + message};
  }
  [[nodiscard]] std::string_view category() const { return errc_name(code); }
};

template <typename T>
using Expected = std::expected<T, Error>;

// Expected<void> with a name that reads well at call sites.
using Status = std::expected<void, Error>;

inline std::unexpected<Error> make_error(Errc code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

// Error from errno for a system call on a path: maps ENOSPC/EDQUOT to no_space, ENOENT to
// not_found, everything else to io.
Error errno_error(int err, std::string_view what, std::string_view path);

}  // namespace eddy
