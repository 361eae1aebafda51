// The hub's follower of the fleet repository: fetches the branch as devices do and judges each
// new tip with the same checks (ota/acceptance.hpp: signature against allowed_signers,
// descends from the last accepted commit, the fleet parses). It only judges: the hub records an
// acceptance or a refusal, then tells the follower (mark_accepted / mark_refused), so a result
// the hub could not record is judged again at the next poll. One thread uses a Follower.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "ota/acceptance.hpp"
#include "ota/git_source.hpp"
#include "platform/error.hpp"

namespace eddy::fleet {

struct FollowerOptions {
  std::string url;
  std::string branch = "main";
  std::filesystem::path allowed_signers;
  std::filesystem::path repo_dir;  // a bare repository the follower keeps
  std::chrono::seconds fetch_timeout{120};
};

struct FollowResult {
  enum class Kind { unchanged, accepted, refused, fetch_failed };
  Kind kind = Kind::unchanged;
  std::string commit;                           // the fetched tip (empty when the fetch failed)
  std::optional<ota::AcceptedCommit> accepted;  // Kind::accepted
  std::optional<Error> error;                   // Kind::refused, Kind::fetch_failed
};

class Follower {
 public:
  // last_accepted / last_refused: what the hub recorded before (empty strings for none).
  static Expected<std::unique_ptr<Follower>> open(FollowerOptions options, std::string last_accepted,
                                                  std::string last_refused);

  // Fetch; a tip that is neither the accepted nor the last refused commit is judged.
  FollowResult poll();
  // The fleet at the accepted commit, read from the local repository (start-up, no network).
  Expected<ota::AcceptedCommit> reload_accepted();

  // Also points refs/eddy/accepted at it, so a rewritten branch cannot make it unreachable.
  void mark_accepted(const std::string& commit);
  void mark_refused(const std::string& commit) { last_refused_ = commit; }
  const std::string& last_accepted() const { return last_accepted_; }

 private:
  Follower(FollowerOptions options, ota::GitSource source, std::string last_accepted, std::string last_refused)
      : options_(std::move(options)), source_(std::move(source)), last_accepted_(std::move(last_accepted)),
        last_refused_(std::move(last_refused)) {}

  FollowerOptions options_;
  ota::GitSource source_;
  std::string last_accepted_, last_refused_;
};

}  // namespace eddy::fleet
