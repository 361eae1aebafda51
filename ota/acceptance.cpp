#include "ota/acceptance.hpp"

#include <map>

namespace eddy::ota {

namespace {
std::string short_id(std::string_view id) { return std::string(id.substr(0, 7)); }
}  // namespace

Expected<Fleet> load_fleet(const GitSource& source, std::string_view commit) {
  std::map<std::string, std::string> files;
  for (const char* dir : {"releases", "rollouts"}) {
    auto names = source.list_files(commit, dir);
    if (!names) return std::unexpected(names.error());
    for (const auto& name : *names) {
      if (!name.ends_with(".yaml") && !name.ends_with(".yml")) continue;
      std::string path = std::string(dir) + "/" + name;
      auto content = source.read_file(commit, path, max_model_file_bytes);
      if (!content) return std::unexpected(content.error());
      files[path] = std::move(*content);
    }
  }
  return parse_fleet(files);
}

Expected<AcceptedCommit> check_fetched_commit(const GitSource& source, std::string_view commit,
                                              const std::filesystem::path& allowed_signers,
                                              std::string_view last_accepted) {
  const std::string what = "commit " + short_id(commit);
  // Re-read at every check: an operator who removes a key expects it to stop counting.
  auto signers = AllowedSigners::load(allowed_signers);
  if (!signers) return std::unexpected(signers.error().with_context(what));
  auto info = source.commit(commit);
  if (!info) return std::unexpected(info.error());
  auto signer = verify_commit(info->raw, *signers, commit);
  if (!signer) return std::unexpected(signer.error());
  if (!last_accepted.empty()) {
    auto descends = source.descends_from(commit, last_accepted);
    if (!descends) return std::unexpected(descends.error());
    if (!*descends)
      return make_error(Errc::not_descendant,
                        what + " does not descend from the last accepted commit " + short_id(last_accepted) +
                            ": the branch history was rewritten; push a new signed commit on top of " +
                            short_id(last_accepted));
  }
  auto fleet = load_fleet(source, commit);
  if (!fleet) return std::unexpected(fleet.error().with_context(what));
  return AcceptedCommit{std::move(*info), std::move(*signer), std::move(*fleet)};
}

}  // namespace eddy::ota
