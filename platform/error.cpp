#include "platform/error.hpp"

#include <cerrno>
#include <cstring>

namespace eddy {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return "invalid-argument";
    case Errc::not_found: return "not-found";
    case Errc::io: return "io";
    case Errc::no_space: return "no-space";
    case Errc::network: return "network";
    case Errc::timeout: return "timeout";
    case Errc::process: return "process";
    case Errc::database: return "database";
    case Errc::unsigned_commit: return "unsigned-commit";
    case Errc::unknown_key: return "unknown-key";
    case Errc::bad_signature: return "bad-signature";
    case Errc::key_not_allowed: return "key-not-allowed";
    case Errc::not_descendant: return "not-descendant";
    case Errc::digest_mismatch: return "digest-mismatch";
    case Errc::too_large: return "too-large";
    case Errc::unsafe_path: return "unsafe-path";
    case Errc::incompatible: return "incompatible";
    case Errc::conflict: return "conflict";
    case Errc::unsupported: return "unsupported";
    case Errc::unauthorized: return "unauthorized";
    case Errc::internal: return "internal";
  }
  return "unknown";
}

std::optional<Errc> errc_from_name(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Errc::internal); ++i) {
    auto code = static_cast<Errc>(i);
    if (errc_name(code) == name) return code;
  }
  return std::nullopt;
}

Error errno_error(int err, std::string_view what, std::string_view path) {
  Errc code = Errc::io;
  if (err == ENOSPC || err == EDQUOT) code = Errc::no_space;
  else if (err == ENOENT) code = Errc::not_found;
  std::string message(what);
  message += " ";
  message += path;
  message += ": ";
  message += std::strerror(err);
  if (code == Errc::no_space) message += " (free some space on that file system and retry)";
  return Error{code, std::move(message)};
}

}  // namespace eddy
