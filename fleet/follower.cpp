#include "fleet/follower.hpp"

#include "platform/log.hpp"

namespace eddy::fleet {

Expected<std::unique_ptr<Follower>> Follower::open(FollowerOptions options, std::string last_accepted,
                                                   std::string last_refused) {
  auto source = ota::GitSource::open(options.repo_dir, options.url, options.branch);
  if (!source) return std::unexpected(source.error());
  return std::unique_ptr<Follower>(
      new Follower(std::move(options), std::move(*source), std::move(last_accepted), std::move(last_refused)));
}

FollowResult Follower::poll() {
  FollowResult result;
  auto tip = source_.fetch(options_.fetch_timeout);
  if (!tip) {
    result.kind = FollowResult::Kind::fetch_failed;
    result.error = tip.error();
    return result;
  }
  result.commit = *tip;
  if (*tip == last_accepted_ || *tip == last_refused_) return result;
  auto judged = ota::check_fetched_commit(source_, *tip, options_.allowed_signers, last_accepted_);
  if (!judged) {
    result.kind = FollowResult::Kind::refused;
    result.error = judged.error();
    return result;
  }
  result.kind = FollowResult::Kind::accepted;
  result.accepted = std::move(*judged);
  return result;
}

void Follower::mark_accepted(const std::string& commit) {
  last_accepted_ = commit;
  last_refused_.clear();
  if (auto st = source_.set_accepted(commit); !st) log::warning("cannot mark the accepted commit: " + st.error().message);
}

Expected<ota::AcceptedCommit> Follower::reload_accepted() {
  if (last_accepted_.empty()) return make_error(Errc::not_found, "no fleet commit was accepted yet");
  auto info = source_.commit(last_accepted_);
  if (!info) return std::unexpected(info.error());
  auto fleet = ota::load_fleet(source_, last_accepted_);
  if (!fleet) return std::unexpected(fleet.error().with_context("commit " + last_accepted_.substr(0, 7)));
  return ota::AcceptedCommit{std::move(*info), {}, std::move(*fleet)};
}

}  // namespace eddy::fleet
