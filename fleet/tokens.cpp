#include "fleet/tokens.hpp"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <set>
#include <sstream>

#include "platform/fs.hpp"
#include "platform/log.hpp"

namespace eddy::fleet {

namespace {

std::string digest_of(std::string_view token) {
  std::string digest(crypto_generichash_BYTES, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(digest.data()), digest.size(),
                     reinterpret_cast<const unsigned char*>(token.data()), token.size(), nullptr, 0);
  return digest;
}

}  // namespace

TokenFile::TokenFile(TokenFile&& other) noexcept
    : path_(std::move(other.path_)), stamp_(other.stamp_), racy_(other.racy_), by_digest_(std::move(other.by_digest_)) {}

TokenFile::Parsed TokenFile::parse(std::string_view text, const std::string& origin) {
  Parsed out;
  std::set<std::string> names;
  std::istringstream lines{std::string(text)};
  std::size_t number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    const std::string where = origin + ":" + std::to_string(number) + ": ";
    std::istringstream words(line);
    std::string name, token, extra;
    words >> name;
    if (name.empty() || name.starts_with('#')) continue;
    words >> token >> extra;
    if (token.empty() || !extra.empty()) {
      out.problems.push_back({Errc::invalid_argument,
                              where + "expected \"<name> <token>\": two words separated by spaces"});
      continue;
    }
    if (token.size() < min_token_size) {
      out.problems.push_back({Errc::invalid_argument, where + "the token of `" + name + "` is shorter than " +
                                                          std::to_string(min_token_size) +
                                                          " characters (make one with `openssl rand -hex 32`)"});
      continue;
    }
    if (!names.insert(name).second) {
      out.problems.push_back({Errc::invalid_argument, where + "`" + name + "` is listed twice: keep one line"});
      continue;
    }
    if (!out.by_digest.emplace(digest_of(token), name).second) {
      out.problems.push_back({Errc::invalid_argument,
                              where + "the token of `" + name + "` is also another name's token: give each its own"});
      continue;
    }
  }
  return out;
}

std::optional<TokenFile::Stamp> TokenFile::stamp_of(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;
  return Stamp{static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
               static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec,
               static_cast<std::int64_t>(st.st_size), st.st_ino};
}

bool TokenFile::is_racy(const std::optional<Stamp>& stamp) {
  if (!stamp) return false;
  // How long after a change the file's times may not yet tell the next one: Linux stamps files
  // from a clock that ticks at most every 10 ms, on file systems that keep nanoseconds; those
  // that keep whole seconds (FAT: even ones) show times without them, and get 2 s. (2 s for
  // every file made the hub re-read and re-parse the whole file at each request for 2 s after
  // each change.)
  constexpr std::int64_t second = 1'000'000'000;
  const bool whole_seconds = stamp->mtime_ns % second == 0 && stamp->ctime_ns % second == 0;
  const std::int64_t window = whole_seconds ? 2 * second : 20'000'000;
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const std::int64_t now_ns = static_cast<std::int64_t>(now.tv_sec) * second + now.tv_nsec;
  return now_ns - std::max(stamp->mtime_ns, stamp->ctime_ns) < window;
}

Expected<TokenFile> TokenFile::load(const std::filesystem::path& file) {
  if (sodium_init() < 0) return make_error(Errc::internal, "libsodium cannot be initialised");
  TokenFile tokens(file);
  tokens.stamp_ = stamp_of(file);
  tokens.racy_ = is_racy(tokens.stamp_);
  auto text = fs::read_file(file, 64u << 20);
  if (!text) return std::unexpected(text.error());
  auto parsed = parse(*text, file.string());
  if (!parsed.problems.empty()) {
    if (parsed.problems.size() == 1) return std::unexpected(parsed.problems.front());
    std::string message = file.string() + ": " + std::to_string(parsed.problems.size()) + " problems:";
    for (const auto& p : parsed.problems) message += "\n  - " + p.message;
    return make_error(Errc::invalid_argument, std::move(message));
  }
  tokens.by_digest_ = std::move(parsed.by_digest);
  return tokens;
}

void TokenFile::refresh_locked() {
  auto now = stamp_of(path_);
  if (now == stamp_ && !racy_) return;
  const bool changed = now != stamp_;
  stamp_ = now;
  racy_ = is_racy(now);
  if (!now) {
    if (!by_digest_.empty())
      log::error("token file " + path_.string() + " is gone: every token it held is refused until it is back");
    by_digest_.clear();
    return;
  }
  auto text = fs::read_file(path_, 64u << 20);
  if (!text) {
    log::error("cannot re-read token file: " + text.error().message + "; every token it held is refused");
    by_digest_.clear();
    return;
  }
  auto parsed = parse(*text, path_.string());
  if (changed)
    for (const auto& p : parsed.problems) log::error(p.message + " (this line grants nothing until it is fixed)");
  by_digest_ = std::move(parsed.by_digest);
  if (changed) log::notice("re-read token file " + path_.string() + ": " + std::to_string(by_digest_.size()) + " tokens");
}

std::optional<std::string> TokenFile::name_of(std::string_view token) {
  if (token.empty()) return std::nullopt;
  std::lock_guard lock(mutex_);
  refresh_locked();
  auto it = by_digest_.find(digest_of(token));
  if (it == by_digest_.end()) return std::nullopt;
  return it->second;
}

std::size_t TokenFile::size() {
  std::lock_guard lock(mutex_);
  refresh_locked();
  return by_digest_.size();
}

}  // namespace eddy::fleet
