// Bearer tokens of devices and operators: a file of "<name> <token>" lines (`#` comments, blank
// lines), re-read whenever it changes, so deleting a line revokes that token at the next request.
// Tokens are kept only as BLAKE2b digests and looked up by digest, so a lookup's timing tells
// nothing about the tokens held.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "platform/error.hpp"

namespace eddy::fleet {

class TokenFile {
 public:
  // Tokens shorter than this are refused: they could be guessed.
  static constexpr std::size_t min_token_size = 16;

  // Read and check the file strictly: a malformed line, a name or token written twice, or a
  // short token is Errc::invalid_argument naming file and line; a missing file Errc::not_found.
  static Expected<TokenFile> load(const std::filesystem::path& file);

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&&) = delete;
  TokenFile(const TokenFile&) = delete;

  // The name the token belongs to, after re-reading the file if it changed. A file that became
  // malformed keeps only its well-formed lines (the problems are logged); a file that
  // disappeared holds no tokens: a change never keeps a token its file no longer lists.
  std::optional<std::string> name_of(std::string_view token);
  std::size_t size();
  const std::filesystem::path& path() const { return path_; }

 private:
  struct Stamp {
    std::int64_t mtime_ns = 0, ctime_ns = 0;
    std::int64_t size = -1;
    ino_t inode = 0;
    bool operator==(const Stamp&) const = default;
  };
  struct Parsed {
    std::unordered_map<std::string, std::string> by_digest;  // digest -> name
    std::vector<Error> problems;
  };
  explicit TokenFile(std::filesystem::path path) : path_(std::move(path)) {}
  static Parsed parse(std::string_view text, const std::string& origin);
  static std::optional<Stamp> stamp_of(const std::filesystem::path& file);
  static bool is_racy(const std::optional<Stamp>& stamp);
  void refresh_locked();

  std::filesystem::path path_;
  std::mutex mutex_;
  std::optional<Stamp> stamp_;
  // The file changed too recently for its time stamp to tell a later change within the same
  // clock tick (file times are coarse): it is read again until it has been still for longer
  // than a tick (is_racy).
  bool racy_ = false;
  std::unordered_map<std::string, std::string> by_digest_;
};

}  // namespace eddy::fleet
