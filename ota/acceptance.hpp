// Accepting a fetched fleet commit: the checks every follower of the fleet repository applies
// (eddyd's Updater and eddy-hub alike) before a commit's releases and rollouts count. In order:
// the commit's SSH signature verifies against allowed_signers (ota/trust.hpp), it descends
// from the last accepted commit (no rewinds), and its releases/ and rollouts/ parse as a
// fleet (ota/model.hpp). Nothing is persisted here: the caller records the acceptance.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "ota/git_source.hpp"
#include "ota/model.hpp"
#include "ota/trust.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

// The largest release or rollout file read from the repository.
inline constexpr std::size_t max_model_file_bytes = 1 << 20;

struct AcceptedCommit {
  CommitInfo commit;
  SignerIdentity signer;
  Fleet fleet;
};

// Judge `commit` (fetched into `source`). `last_accepted` is empty before the first acceptance.
// Refusals carry their own codes: unsigned_commit, unknown_key, bad_signature, key_not_allowed
// (ota/trust.hpp), not_descendant (rewritten history), invalid_argument (malformed YAML, naming
// file and line) or not_found (allowed_signers missing, a rollout naming a missing release),
// each message starting with "commit <short id>".
[[nodiscard]] Expected<AcceptedCommit> check_fetched_commit(const GitSource& source, std::string_view commit,
                                                            const std::filesystem::path& allowed_signers,
                                                            std::string_view last_accepted);

// The releases/ and rollouts/ *.yaml|*.yml files at `commit`, parsed (ota::parse_fleet).
[[nodiscard]] Expected<Fleet> load_fleet(const GitSource& source, std::string_view commit);

}  // namespace eddy::ota
