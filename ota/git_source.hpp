// The release source: a bare local Git repository that follows one branch of the fleet
// repository (file://, git://, http://, https://, ssh://) through libgit2, and reads commits,
// files and history out of it. It never decides what to trust: fetch() only brings objects in
// (into refs/eddy/fetched, even when the remote history was rewritten) and the trust layer
// judges the fetched commit before anything is accepted.
//
// One GitSource is used by one thread at a time (a libgit2 repository is not thread-safe);
// separate GitSource objects may be used on separate threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.hpp"

struct git_repository;

namespace eddy::ota {

struct CommitInfo {
  std::string id;        // 40 hex digits
  std::int64_t time = 0; // committer time, unix seconds
  std::string raw;       // the commit object exactly as `git cat-file commit <id>` prints it
  std::string summary;   // first line of the message
};

struct FetchStats {
  std::size_t received_objects = 0;
  std::size_t received_bytes = 0;
};

class GitSource {
 public:
  // The local ref that fetch() force-updates to the remote branch's tip, and the one
  // set_accepted() writes.
  static constexpr std::string_view fetched_ref = "refs/eddy/fetched";
  static constexpr std::string_view accepted_ref = "refs/eddy/accepted";

  // Open, or create, a bare repository at repo_dir that follows `branch` of `url`. A new
  // repository is made beside repo_dir and renamed into place, so a power cut never leaves a
  // half-made one. Changing url or branch later updates the remote "origin".
  // Errors: invalid_argument (bad URL or branch name, repo_dir is a non-empty folder that is
  // not a Git repository), io / no_space.
  static Expected<GitSource> open(const std::filesystem::path& repo_dir, std::string url, std::string branch);

  GitSource(GitSource&& other) noexcept;
  GitSource& operator=(GitSource&& other) noexcept;
  GitSource(const GitSource&) = delete;
  GitSource& operator=(const GitSource&) = delete;
  ~GitSource();

  // Fetch the branch into refs/eddy/fetched (forced) and return the fetched tip's id. Never
  // moves refs/eddy/accepted. Errors: network naming the URL (unreachable, refused, HTTP
  // error), not_found when the branch does not exist on the remote, timeout past `timeout`.
  // The deadline covers connecting and every read and write on TCP (git://, http://,
  // https://) and the transfer itself; it does not cover DNS resolution or ssh://.
  [[nodiscard]] Expected<std::string> fetch(std::chrono::seconds timeout = std::chrono::seconds(120));
  // Objects and bytes the last fetch() received (0 when it had nothing new to bring).
  const FetchStats& last_fetch_stats() const { return stats_; }

  [[nodiscard]] Expected<CommitInfo> commit(std::string_view id) const;
  // true when `commit` == `ancestor` or has it in its history.
  [[nodiscard]] Expected<bool> descends_from(std::string_view commit, std::string_view ancestor) const;
  // A file at a commit; not_found naming path and commit when missing; too_large past
  // max_bytes (checked before the blob is loaded); invalid_argument for a directory or a
  // symbolic link.
  [[nodiscard]] Expected<std::string> read_file(std::string_view commit, std::string_view path,
                                                std::size_t max_bytes) const;
  // Names of the regular files directly inside `dir` ("" for the top) at `commit`, sorted;
  // empty when dir does not exist.
  [[nodiscard]] Expected<std::vector<std::string>> list_files(std::string_view commit, std::string_view dir) const;
  // Committer time of the newest commit, following first parents from `commit`, whose tree
  // changed `path` (a file or a directory) compared with its first parent; the commit that
  // introduced it counts. not_found when path does not exist at `commit`.
  [[nodiscard]] Expected<std::int64_t> last_change_time(std::string_view commit, std::string_view path) const;
  // refs/eddy/accepted -> id (keeps it from gc; the daemon's database is the source of truth).
  [[nodiscard]] Status set_accepted(std::string_view id);

  const std::filesystem::path& repo_dir() const { return repo_dir_; }
  const std::string& url() const { return url_; }
  const std::string& branch() const { return branch_; }

 private:
  GitSource(git_repository* repo, std::filesystem::path repo_dir, std::string url, std::string branch);

  git_repository* repo_ = nullptr;
  std::filesystem::path repo_dir_;
  std::string url_;
  std::string branch_;
  FetchStats stats_;
};

}  // namespace eddy::ota
