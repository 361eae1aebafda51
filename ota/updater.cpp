#include "ota/updater.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <cstdint>
#include <limits>
#include <set>

#include <unistd.h>

#include "ota/analysis.hpp"
#include "ota/app_supervisor.hpp"
#include "ota/hooks.hpp"
#include "ota/hub_gate.hpp"
#include "ota/payload.hpp"
#include "ota/report_sender.hpp"
#include "ota/resumable_download.hpp"
#include "ota/trust.hpp"
#include "ota/version.hpp"
#include "platform/fault.hpp"
#include "platform/fs.hpp"
#include "platform/log.hpp"

namespace eddy::ota {

namespace {

constexpr std::size_t kMaxModelFileBytes = 1 << 20;

std::string short_id(std::string_view id) { return std::string(id.substr(0, 7)); }

// Errors that say the release itself is bad (not the network, the disk or a crash): such a
// release is rejected on this device instead of being tried again at every poll.
bool is_release_fault(Errc code) {
  switch (code) {
    case Errc::digest_mismatch:
    case Errc::too_large:
    case Errc::unsafe_path:
    case Errc::invalid_argument:
    case Errc::incompatible:
    case Errc::unsupported:
      return true;
    default:
      return false;
  }
}

// Passes bytes through and reaches the fault point "stream:mid" halfway, so crash tests can
// stop eddyd in the middle of an unpack.
class FaultPointStream final : public ByteStream {
 public:
  FaultPointStream(ByteStream& inner, std::uint64_t total, std::function<void(std::uint64_t)> progress)
      : inner_(inner), half_(total / 2), progress_(std::move(progress)) {}
  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    auto n = inner_.read(buffer, size);
    if (n) {
      bytes_ += *n;
      if (!passed_half_ && bytes_ >= half_ && bytes_ > 0) {
        passed_half_ = true;
        fault::point("stream:mid");
      }
      if (progress_) progress_(bytes_);
    }
    return n;
  }

 private:
  ByteStream& inner_;
  std::uint64_t half_;
  std::uint64_t bytes_ = 0;
  bool passed_half_ = false;
  std::function<void(std::uint64_t)> progress_;
};

}  // namespace

// One update row being walked through the table.
struct Updater::Attempt {
  std::int64_t id = 0;
  State state = State::idle;
  std::string commit;
  Release release;
  std::unique_ptr<Installer> installer;  // the target's; null when this device does not handle it
  std::string rollout;            // the rollout that assigned the release
  std::int64_t generation = 0;    // the hub's generation of it (0 without a hub)
  std::string from_version;   // committed version when the attempt began: where a rollback goes
  std::string rollback_outcome = "rolled-back";  // or "interrupted": recorded as the outcome
  std::string outcome_message;                   // plain words for `eddy check`
};

Expected<std::unique_ptr<Updater>> Updater::create(UpdaterOptions options, AppControl& apps) {
  if (auto st = fs::create_directories(options.data_dir, 0750); !st) return std::unexpected(st.error());
  auto store = storage::StateStore::open(options.data_dir / "eddy.db");
  if (!store) return std::unexpected(store.error());
  auto source = GitSource::open(options.data_dir / "repo.git", options.source_url, options.source_branch);
  if (!source) return std::unexpected(source.error());
  std::optional<HubClient> hub;
  if (options.hub) {
    auto client = HubClient::create(*options.hub, options.device.id);
    if (!client) return std::unexpected(client.error());
    hub = std::move(*client);
    store->enable_outbox(options.hub->outbox_limit);
  }
  std::unique_ptr<ContainerRuntime> runtime;
  if (options.containers)
    runtime = make_container_runtime(options.containers->runtime, process_runner(), options.containers->program);
  std::unique_ptr<Updater> updater(new Updater(std::move(options), apps, std::move(*store), std::move(*source)));
  updater->hub_ = std::move(hub);
  updater->container_runtime_ = std::move(runtime);
  return updater;
}

Updater::Updater(UpdaterOptions options, AppControl& apps, storage::StateStore store, GitSource source)
    : options_(std::move(options)), app_control_(apps), store_(std::move(store)), source_(std::move(source)) {}

Updater::~Updater() = default;

void Updater::set_activity_listener(std::function<void(const std::string&)> listener) {
  std::lock_guard lock(status_mutex_);
  activity_listener_ = std::move(listener);
}

void Updater::set_update_listener(std::function<void(const nlohmann::json&)> listener) {
  std::lock_guard lock(status_mutex_);
  update_listener_ = std::move(listener);
}

void Updater::publish_update() {
  std::function<void(const nlohmann::json&)> listener;
  nlohmann::json update;
  {
    std::lock_guard lock(status_mutex_);
    listener = update_listener_;
    update = current_update_ ? *current_update_ : nlohmann::json(nullptr);
  }
  if (listener) listener(update);
}

void Updater::request_stop() { stop_ = true; }

void Updater::set_activity(const std::string& activity) {
  std::function<void(const std::string&)> listener;
  {
    std::lock_guard lock(status_mutex_);
    if (activity_ == activity) return;
    activity_ = activity;
    listener = activity_listener_;
  }
  if (listener) listener(activity);
}

void Updater::set_progress(std::uint64_t bytes, std::uint64_t total) {
  std::lock_guard lock(status_mutex_);
  if (!current_update_) return;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - progress_started_).count();
  double rate = seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0;
  nlohmann::json progress = {{"bytes", bytes}, {"total", total}, {"rate", rate}};
  if (rate > 0 && total >= bytes)
    progress["eta_seconds"] = static_cast<std::int64_t>(static_cast<double>(total - bytes) / rate);
  (*current_update_)["progress"] = progress;
}

void Updater::record_event(const std::string& level, const std::string& message) {
  if (level == "error") log::error(message);
  else if (level == "warning") log::warning(message);
  else log::info(message);
  if (auto st = store_.record_event(level, message); !st) log::error("cannot record event: " + st.error().message);
}

// Persist the transition, then reach the new state's fault point: a crash test that kills
// eddyd there finds the state recorded and its side effect not yet done.
Status Updater::move(Attempt& attempt, Event event, const std::string& message,
                     const std::function<Status()>& also) {
  auto next = next_state(attempt.state, event);
  if (!next) {
    log::error(next.error().message);
    return std::unexpected(next.error());
  }
  std::string outcome;
  if (*next == State::committed) outcome = "committed";
  else if (*next == State::rolled_back) outcome = attempt.rollback_outcome;
  // "aborted": cut short before activation (retried freely); "interrupted": cut short while
  // the new version was being activated or probed (retried at most max_interrupted_attempts).
  else if (*next == State::failed) outcome = event == Event::refused       ? "refused"
                                             : event == Event::interrupted ? "aborted"
                                                                           : "failed";
  else if (*next == State::idle) outcome = "accepted";
  // The transition and whatever must change with it (`also`) in one transaction.
  auto st = store_.database().transaction([&]() -> Status {
    if (also) {
      if (auto a = also(); !a) return a;
    }
    return store_.transition(attempt.id, state_name(attempt.state), state_name(*next), event_name(event), message,
                             outcome);
  });
  if (!st) {
    log::error("cannot persist state " + std::string(state_name(*next)) + ": " + st.error().message);
    return st;
  }
  log::info("update " + std::to_string(attempt.id) +
            (attempt.release.target.empty() ? "" : " (" + attempt.release.target + " " + attempt.release.version + ")") +
            ": " + std::string(state_name(attempt.state)) + " -> " + std::string(state_name(*next)) +
            (message.empty() ? "" : ": " + message));
  attempt.state = *next;
  {
    std::lock_guard lock(status_mutex_);
    if (current_update_) {
      (*current_update_)["state"] = state_name(*next);
      (*current_update_)["since"] = storage::unix_now();
    }
  }
  publish_update();
  fault::point("state:" + std::string(state_name(*next)));
  return {};
}

// ---------------------------------------------------------------------------------------------
// Polling and trust

CycleResult Updater::run_cycle() {
  CycleResult result;
  if (reboot_pending_) {
    result.outcome = "rebooting";
    result.message = "a reboot was asked for (root file system update); nothing else starts before it";
    set_activity("waiting for the reboot");
    return result;
  }
  set_activity("fetching " + options_.source_url);
  auto tip = source_.fetch();
  (void)store_.put("last_poll_at", std::to_string(storage::unix_now()));
  if (!tip) {
    result.outcome = "failed";
    result.poll_failed = true;
    result.message = tip.error().message;
    (void)store_.put("last_poll_result", "failed: " + tip.error().message);
    log::warning("poll failed: " + tip.error().message);
    if (hub_) {
      // The hub is reachable on its own: it still hears from the device, and its rollback
      // orders are followed with the model of the commit accepted before.
      auto accepted = store_.get("accepted_commit");
      auto sync = sync_with_hub(accepted && *accepted ? **accepted : "");
      if (const Fleet* fleet = fleet_at_accepted(); sync && fleet) {
        std::vector<std::string> messages;
        (void)follow_rollback_orders(*fleet, *sync, messages);
      }
      if (sync) flush_reports();
    }
    set_activity("poll failed; retrying later");
    return result;
  }
  result.commit = *tip;
  auto accepted = store_.get("accepted_commit");
  auto refused = store_.get("refused_commit");
  if (!accepted || !refused) {
    result.outcome = "failed";
    result.message = (!accepted ? accepted.error() : refused.error()).message;
    return result;
  }

  std::int64_t verified_update = 0;  // the row of a commit accepted in this poll
  if (*tip != accepted->value_or("") && *tip != refused->value_or("")) {
    auto ok = accept_commit(*tip, verified_update);
    if (!ok) {
      result.outcome = "refused";
      result.message = ok.error().message;
      (void)store_.put("last_poll_result", "refused " + short_id(*tip));
      set_activity("refused commit " + short_id(*tip) + "; waiting for the next poll");
      return result;
    }
  } else if (*tip == refused->value_or("")) {
    // Nothing new since the refusal: neither downloaded nor verified again.
    result.outcome = "refused";
    result.message = "commit " + short_id(*tip) + " was refused before and is still the tip";
  }

  const Fleet* fleet = fleet_at_accepted();
  auto accepted_now = store_.get("accepted_commit");
  std::string commit = accepted_now && *accepted_now ? **accepted_now : "";
  // Hub mode: after the commit was accepted and parsed, before anything is installed.
  std::optional<Expected<SyncResponse>> hub_answer;
  if (hub_) {
    hub_answer = sync_with_hub(commit);
    if (*hub_answer) flush_reports();
  }
  if (!fleet) {
    if (result.outcome.empty()) {
      result.outcome = "up-to-date";
      result.message = "no commit accepted yet";
    }
    set_activity("waiting for the next poll");
    return result;
  }

  std::int64_t now = storage::unix_now();
  auto assignment = assign(
      *fleet, options_.device,
      [&](const Rollout& r) -> std::int64_t {
        std::string key = commit + ":" + r.file;
        if (auto it = rollout_start_cache_.find(key); it != rollout_start_cache_.end()) return it->second;
        // Kept in the store as well ("<commit> <time>"): each poll runs in a fresh update worker,
        // and the walk back through history to the rollout's last change grows with the history.
        const std::string stored_key = "rollout_start:" + r.file;
        auto stored = store_.get(stored_key);
        std::int64_t start = 0;
        const bool known = stored && *stored && (*stored)->starts_with(commit + " ") &&
                           std::from_chars((*stored)->data() + commit.size() + 1,
                                           (*stored)->data() + (*stored)->size(), start)
                                   .ec == std::errc();
        if (!known) {
          auto t = source_.last_change_time(commit, r.file);
          start = t ? *t : now;
          if (t) (void)store_.put(stored_key, commit + " " + std::to_string(start));
        }
        rollout_start_cache_[key] = start;
        return start;
      },
      now);
  if (!assignment) {
    // A conflict between rollouts is a problem of the repository, found after acceptance.
    record_event("error", "commit " + short_id(commit) + ": " + assignment.error().message);
    result.outcome = "failed";
    result.message = assignment.error().message;
    return result;
  }

  int installed_count = 0;
  int rolled_back_count = 0;
  int failed_count = 0;
  std::vector<std::string> messages;
  std::vector<std::string> waiting;  // hub mode: what would install if the hub admitted it
  if (hub_answer) {
    if (*hub_answer) rolled_back_count += follow_rollback_orders(*fleet, **hub_answer, messages);
    apply_hub_gates(assignment->assignments, *hub_answer, hub_->options().url);
  }
  for (const auto& a : assignment->assignments) {
    if (stop_ || reboot_pending_) break;
    if (!a.admitted) {
      if (a.next_step_at && (!result.next_step_at || *a.next_step_at < *result.next_step_at))
        result.next_step_at = a.next_step_at;
      if (hub_ && !why_not_install(a)) waiting.push_back(a.target + " " + a.release.version + ": " + a.reason);
      log::debug(a.target + ": " + a.reason);
      continue;
    }
    auto why_not = why_not_install(a);
    if (why_not) {
      log::debug(a.target + ": " + *why_not);
      continue;
    }
    Attempt attempt;
    attempt.commit = commit;
    attempt.release = a.release;
    attempt.installer = installer_for(a.target);
    if (!attempt.installer) continue;  // installer_for said why
    attempt.rollout = a.rollout;
    attempt.generation = a.generation;
    auto inst = store_.installed(a.target);
    if (inst && *inst) {
      attempt.from_version = (*inst)->current_version;
    }
    const storage::UpdateSubject subject{a.target,           a.release.name, a.release.version, a.release.payload.sha256,
                                         attempt.from_version, a.rollout,     a.generation};
    if (verified_update != 0) {
      attempt.id = verified_update;
      attempt.state = State::verified;
      verified_update = 0;
      if (auto st = store_.set_update_release(attempt.id, subject); !st) break;
      if (!move(attempt, Event::admitted, a.reason)) break;
    } else {
      auto row = store_.begin_update(commit, "admitted", "admitted", subject);
      if (!row) {
        log::error(row.error().message);
        break;
      }
      attempt.id = row->id;
      attempt.state = State::admitted;
      fault::point("state:admitted");
    }
    switch (install(attempt)) {
      case Finish::committed: ++installed_count; break;
      case Finish::rolled_back: ++rolled_back_count; break;
      case Finish::failed: ++failed_count; break;
      case Finish::stopped: break;
      case Finish::rebooting: break;
    }
    messages.push_back(a.target + " " + a.release.version + ": " + attempt.outcome_message);
    if (hub_ && !stop_) flush_reports();
  }
  // A release the device is not compatible with is refused once in the history (README: the
  // reason is in `eddy history`), then only in the debug log of later polls.
  for (const auto& s : assignment->skipped) {
    const std::string key = "skipped:" + s;
    auto seen = store_.get(key);
    if (seen && !*seen) {
      (void)store_.put(key, "1");
      record_event("warning", s + "; not installed");
    } else {
      log::debug(s);
    }
  }

  if (verified_update != 0) {
    // The new commit admitted nothing for this device (yet).
    Attempt attempt;
    attempt.id = verified_update;
    attempt.state = State::verified;
    attempt.commit = commit;
    (void)move(attempt, Event::not_admitted, "nothing to install for this device");
  }

  if (result.outcome.empty() || result.outcome == "refused") {
    if (reboot_pending_) result.outcome = "rebooting";
    else if (rolled_back_count > 0) result.outcome = "rolled-back";
    else if (failed_count > 0) result.outcome = "failed";
    else if (installed_count > 0) result.outcome = "updated";
    else if (result.outcome.empty())
      result.outcome = result.next_step_at || !waiting.empty() ? "not-admitted" : "up-to-date";
  }
  messages.insert(messages.end(), waiting.begin(), waiting.end());
  if (!messages.empty()) {
    std::string joined;
    for (const auto& m : messages) joined += (joined.empty() ? "" : "; ") + m;
    result.message = joined;
  } else if (result.message.empty()) {
    result.message = result.next_step_at ? "not this device's turn yet" : "up to date at " + short_id(commit);
  }
  (void)store_.put("last_poll_result", result.outcome);
  // The end of the commit's own attempt (verified -> idle) and what follows it.
  if (hub_answer && *hub_answer && !stop_) flush_reports();
  set_activity("idle at " + short_id(commit) + "; waiting for the next poll");
  return result;
}

Expected<std::string> Updater::accept_commit(const std::string& tip, std::int64_t& update_id) {
  set_activity("verifying commit " + short_id(tip));
  auto row = store_.begin_update(tip, "fetched", "fetched");
  if (!row) return std::unexpected(row.error());
  fault::point("state:fetched");
  update_id = row->id;
  Attempt attempt;
  attempt.id = row->id;
  attempt.state = State::fetched;
  attempt.commit = tip;

  auto fail = [&](const Error& e) -> Expected<std::string> {
    (void)refuse(attempt.id, tip, e);
    update_id = 0;
    return std::unexpected(e);
  };

  auto signers = AllowedSigners::load(options_.allowed_signers);
  if (!signers) return fail(signers.error().with_context("commit " + short_id(tip)));
  auto info = source_.commit(tip);
  if (!info) return fail(info.error());
  auto signer = verify_commit(info->raw, *signers, tip);
  if (!signer) return fail(signer.error());
  auto accepted = store_.get("accepted_commit");
  if (!accepted) return fail(accepted.error());
  if (*accepted) {
    auto descends = source_.descends_from(tip, **accepted);
    if (!descends) return fail(descends.error());
    if (!*descends)
      return fail(Error{Errc::not_descendant,
                        "commit " + short_id(tip) + " does not descend from the last accepted commit " +
                            short_id(**accepted) +
                            ": the branch history was rewritten; push a new signed commit on top of " +
                            short_id(**accepted)});
  }
  auto fleet = load_fleet(tip);
  if (!fleet) return fail(fleet.error().with_context("commit " + short_id(tip)));

  // Accepting is one transaction: the transition and the new accepted commit together.
  auto accept = [&]() -> Status {
    if (auto p = store_.put("accepted_commit", tip); !p) return p;
    if (auto p = store_.put("accepted_at", std::to_string(storage::unix_now())); !p) return p;
    return store_.put("refused_commit", "");
  };
  if (auto st = move(attempt, Event::verified, "signed by " + signer->principal + " (" + signer->fingerprint + ")",
                     accept);
      !st)
    return fail(st.error());
  (void)source_.set_accepted(tip);
  fleet_commit_ = tip;
  fleet_ = std::move(*fleet);
  log::notice("accepted commit " + short_id(tip) + " \"" + info->summary + "\" signed by " + signer->principal);
  return tip;
}

Status Updater::refuse(std::int64_t update_id, const std::string& tip, const Error& why) {
  Attempt attempt;
  attempt.id = update_id;
  attempt.state = State::fetched;
  (void)move(attempt, Event::refused, why.message);
  (void)store_.put("refused_commit", tip);
  record_event("warning", "commit " + short_id(tip) + " refused (" + std::string(why.category()) + "): " + why.message);
  return {};
}

Expected<Fleet> Updater::load_fleet(const std::string& commit) {
  std::map<std::string, std::string> files;
  for (const char* dir : {"releases", "rollouts"}) {
    auto names = source_.list_files(commit, dir);
    if (!names) return std::unexpected(names.error());
    for (const auto& name : *names) {
      if (!name.ends_with(".yaml") && !name.ends_with(".yml")) continue;
      std::string path = std::string(dir) + "/" + name;
      auto content = source_.read_file(commit, path, kMaxModelFileBytes);
      if (!content) return std::unexpected(content.error());
      files[path] = std::move(*content);
    }
  }
  return parse_fleet(files);
}

const Fleet* Updater::fleet_at_accepted() {
  auto accepted = store_.get("accepted_commit");
  if (!accepted || !*accepted || (*accepted)->empty()) return nullptr;
  if (fleet_ && fleet_commit_ == **accepted) return &*fleet_;
  auto fleet = load_fleet(**accepted);
  if (!fleet) {
    log::error("cannot read the model of accepted commit " + short_id(**accepted) + ": " + fleet.error().message);
    return nullptr;
  }
  fleet_commit_ = **accepted;
  fleet_ = std::move(*fleet);
  return &*fleet_;
}

// Reasons an admitted release is not installed now; nullopt means install it.
std::optional<std::string> Updater::why_not_install(const Assignment& a) {
  const Release& r = a.release;
  const bool is_app = options_.apps.contains(a.target);
  if (r.payload.type == "app") {
    if (!is_app) return "target `" + a.target + "` is not an app configured on this device";
  } else if (r.payload.type == "container") {
    if (!container_runtime_)
      return "payload type `container` is not handled by this device (add a `containers:` section to eddyd.yaml)";
    if (is_app) return "target `" + a.target + "` is an app on this device, not a container";
  } else if (r.payload.type == "rootfs") {
    if (!options_.rootfs)
      return "payload type `rootfs` is not handled by this device (add a `rootfs:` section to eddyd.yaml)";
  } else {
    return "payload type `" + r.payload.type + "` is not handled by this device";
  }
  auto inst = store_.installed(a.target);
  if (inst && *inst && (*inst)->current_version == r.version) return "already running " + r.version;
  auto rejected = store_.rejection(a.target, r.version, r.payload.sha256);
  if (rejected && *rejected) {
    const auto& rejection = **rejected;
    // With a hub, a higher generation of the rollout (a retry) admits the release again.
    if (!hub_ || a.generation <= rejection.generation)
      return "release " + r.name + " failed here before (" + rejection.reason + ")" +
             (hub_ ? "; not retried before the hub's generation " + std::to_string(rejection.generation + 1)
                   : "; not retried");
  }
  auto interrupted = store_.count_outcomes(a.target, r.version, "interrupted");
  if (interrupted && *interrupted >= options_.max_interrupted_attempts)
    return "release " + r.name + " was interrupted " + std::to_string(*interrupted) + " times; not retried";
  if (inst && *inst && !r.allow_downgrade && compare_versions(r.version, (*inst)->current_version) < 0) {
    std::string key = "downgrade:" + a.target + ":" + r.version;
    auto seen = store_.get(key);
    if (seen && !*seen) {
      (void)store_.put(key, "1");
      record_event("warning", "release " + r.name + " (" + r.version + ") is older than the running " +
                                  (*inst)->current_version + "; refused (set allowDowngrade: true in the release to allow)");
    }
    return "downgrade refused";
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Installing

Updater::Finish Updater::install(Attempt& attempt) {
  const Release& r = attempt.release;
  Installer& installer = *attempt.installer;
  {
    std::lock_guard lock(status_mutex_);
    current_update_ = nlohmann::json{{"target", r.target}, {"release", r.name}, {"version", r.version},
                                     {"state", state_name(attempt.state)}, {"since", storage::unix_now()}};
    progress_started_ = std::chrono::steady_clock::now();
  }
  publish_update();
  struct ClearUpdate {
    Updater& u;
    ~ClearUpdate() {
      {
        std::lock_guard lock(u.status_mutex_);
        u.current_update_.reset();
      }
      u.publish_update();
    }
  } clear{*this};

  set_activity("downloading " + r.name);
  const bool pulled = r.payload.path.empty() && r.payload.url.empty();  // a container image from a registry
  if (!move(attempt, Event::download_started,
            pulled ? "pull " + r.payload.container.image : r.payload.path.empty() ? r.payload.url : r.payload.path))
    return Finish::failed;

  auto stage = [&]() -> Status {
    if (auto st = installer.before_download(r, attempt.from_version); !st) return st;
    if (pulled) {
      MemoryStream nothing({});
      return installer.stage(r, nothing);
    }
    // The payload, or a delta of it that the installer can rebuild it from.
    auto delta = installer.delta_for(r);
    if (!delta) return std::unexpected(delta.error());
    const std::string& path = *delta ? (*delta)->path : r.payload.path;
    const std::string& url = *delta ? (*delta)->url : r.payload.url;
    const std::string& sha256 = *delta ? (*delta)->sha256 : r.payload.sha256;
    const std::uint64_t size = *delta ? (*delta)->size : r.payload.size;
    const std::string what = (*delta ? "delta " + path + url + " of release " : "payload of release ") + r.name;
    std::unique_ptr<ByteStream> raw;
    if (!path.empty()) {
      // At most size + 1 bytes (more is refused), clamped for 32-bit size_t.
      auto limit = std::min<std::uint64_t>(size + 1, std::numeric_limits<std::size_t>::max());
      auto bytes = source_.read_file(attempt.commit, path, static_cast<std::size_t>(limit));
      if (!bytes && bytes.error().code == Errc::too_large)  // said as a download's VerifyingStream says it
        return make_error(Errc::too_large, what + ": " + path + " is larger than the " + std::to_string(size) +
                                               " bytes the release declares (`size`)");
      if (!bytes) return std::unexpected(bytes.error());
      raw = std::make_unique<MemoryStream>(std::move(*bytes));
    } else {
      // A dropped or stalled connection resumes with a Range request instead of starting over.
      ResumeOptions resume;
      resume.idle_timeout = options_.download_idle_timeout;
      auto stream = open_resumable_url_stream(url, resume);
      if (!stream) return std::unexpected(stream.error());
      raw = std::move(*stream);
    }
    VerifyingStream verified(std::move(raw), sha256, size, what);
    FaultPointStream watched(verified, size,
                             [this, total = size](std::uint64_t bytes) {
                               set_progress(bytes, total);
                               publish_update();
                             });
    return installer.stage(r, watched);
  };
  if (auto st = stage(); !st) {
    Error e = st.error();
    attempt.outcome_message = e.message;
    (void)installer.discard(r.version);
    (void)move(attempt, Event::stage_failed, e.message);
    if (is_release_fault(e.code))
      (void)store_.reject_release(r.target, r.version, r.payload.sha256, e.message, attempt.generation);
    record_event("error", e.message);
    return Finish::failed;
  }
  if (!move(attempt, Event::staged,
            r.payload.type == "container" ? "image " + r.payload.container.image + " ready"
            : r.payload.type == "rootfs"  ? "written to the inactive slot and read back"
                                          : "unpacked into " + installer.version_dir(r.version).string()))
    return Finish::failed;
  return activate_and_probe(attempt);
}

std::map<std::string, std::string> Updater::hook_env(const Attempt& attempt) const {
  return {{"EDDY_TARGET", attempt.release.target},
          {"EDDY_RELEASE", attempt.release.name},
          {"EDDY_VERSION", attempt.release.version},
          {"EDDY_PREVIOUS_VERSION", attempt.from_version}};
}

std::unique_ptr<Installer> Updater::installer_for(const std::string& target) {
  if (auto app = options_.apps.find(target); app != options_.apps.end())
    return std::make_unique<AppTargetInstaller>(app->second, app_control_);
  if (target == "rootfs") {
    if (!options_.rootfs) return nullptr;
    auto rootfs = RootfsInstaller::create(*options_.rootfs, store_, options_.data_dir / "rootfs");
    if (!rootfs) {
      log::error(rootfs.error().message);
      return nullptr;
    }
    return std::move(*rootfs);
  }
  if (!container_runtime_ || target.empty()) return nullptr;
  ContainerTarget container{target, options_.data_dir / "containers" / target, options_.containers->keep_images};
  return std::make_unique<ContainerTargetInstaller>(*container_runtime_, std::move(container), store_);
}

Updater::Finish Updater::activate_and_probe(Attempt& attempt) {
  const Release& r = attempt.release;
  Installer& installer = *attempt.installer;
  set_activity("activating " + r.name);
  if (!move(attempt, Event::activate)) return Finish::failed;

  auto env = hook_env(attempt);
  const auto version_dir = installer.version_dir(r.version);
  const auto active_dir = installer.active_dir();
  if (auto st = run_hooks(r.hooks.pre_activate, "pre-activate", version_dir, r.hooks.timeout, env); !st) {
    (void)move(attempt, Event::activate_failed, st.error().message);
    return roll_back(attempt, st.error().message, true);
  }
  if (auto st = installer.switch_in(r); !st) {
    (void)move(attempt, Event::activate_failed, st.error().message);
    return roll_back(attempt, st.error().message, false);
  }
  if (installer.activates_by_reboot()) {
    // `rebooting` is persisted (with the reboot counted) before the reboot is asked for; the
    // attempt goes on in recover() after the boot.
    set_activity("rebooting into " + r.name);
    if (auto st = reboot_device(attempt, Event::reboot, "trial boot of " + r.version + " armed; rebooting"); !st) {
      std::string reason = "cannot reboot into " + r.version + ": " + st.error().message;
      (void)move(attempt, attempt.state == State::activating ? Event::activate_failed : Event::boot_failed, reason);
      return roll_back(attempt, reason, false);
    }
    attempt.outcome_message = "rebooting into " + r.version;
    return Finish::rebooting;
  }
  if (auto st = installer.run(r, attempt.from_version); !st) {
    (void)move(attempt, Event::activate_failed, st.error().message);
    return roll_back(attempt, st.error().message, true);
  }
  // A failing post-activate or pre-commit hook counts as one failed check.
  int hook_failures = 0;
  std::string hook_failure;
  if (auto st = run_hooks(r.hooks.post_activate, "post-activate", active_dir, r.hooks.timeout, env); !st) {
    ++hook_failures;
    hook_failure = st.error().message;
    record_event("warning", r.name + ": " + hook_failure);
  }
  if (!move(attempt, Event::activated, "running " + r.version)) return Finish::failed;
  return probe_and_commit(attempt, hook_failures, hook_failure);
}

Updater::Finish Updater::probe_and_commit(Attempt& attempt, int hook_failures, const std::string& hook_failure) {
  const Release& r = attempt.release;
  Installer& installer = *attempt.installer;
  auto env = hook_env(attempt);
  const auto active_dir = installer.active_dir();
  set_activity("probing " + r.name);
  Analysis analysis = r.analysis;
  analysis.threshold -= hook_failures;
  AnalysisVerdict verdict;
  if (analysis.threshold < 0) {
    verdict = AnalysisVerdict{false, 0, hook_failures, hook_failure};
  } else {
    verdict = run_analysis(
        analysis, active_dir,
        [&](int iteration, const ProbeResult& p) {
          (void)store_.record_probe(attempt.id, iteration, p.probe, p.ok, p.detail, p.duration.count());
          if (!p.ok) log::warning(r.name + ": probe " + p.probe + " failed: " + p.detail);
        },
        [this] { return stop_.load(); });
  }
  if (stop_) return Finish::stopped;  // persisted `probing`: recovery rolls back at start-up
  if (verdict.passed) {
    if (auto st = run_hooks(r.hooks.pre_commit, "pre-commit", active_dir, r.hooks.timeout, env); !st) {
      ++verdict.failed_checks;
      if (verdict.failed_checks > analysis.threshold) {
        verdict.passed = false;
        verdict.reason = st.error().message;
      }
    }
  }
  if (!verdict.passed) {
    std::string reason = "health analysis failed: " + verdict.reason;
    (void)move(attempt, Event::probes_failed, reason);
    return roll_back(attempt, reason, true);
  }

  // The new version serves alone (a container handed over) before the commit is recorded: a
  // crash in between rolls back to the previous one, which recovery starts again.
  if (auto st = installer.promote(r, attempt.from_version); !st) {
    std::string reason = "cannot switch over to " + r.version + ": " + st.error().message;
    (void)move(attempt, Event::probes_failed, reason);
    return roll_back(attempt, reason, false);
  }
  // Commit: the state and the installed version together.
  std::string summary = "healthy after " + std::to_string(verdict.iterations_run) + " iterations, " +
                        std::to_string(verdict.failed_checks) + " failed checks (threshold " +
                        std::to_string(r.analysis.threshold) + ")";
  if (auto st = move(attempt, Event::probes_passed, summary,
                     [&] { return store_.set_installed(r.target, r.version, r.name); });
      !st) {
    log::error("cannot commit " + r.name + ": " + st.error().message);
    return Finish::failed;
  }
  log::notice(r.target + " " + r.version + " committed");
  attempt.outcome_message = "committed";
  std::set<std::string> keep = {r.version};
  if (!attempt.from_version.empty()) keep.insert(attempt.from_version);
  if (auto p = installer.prune(keep); !p) log::warning("prune " + installer.name() + ": " + p.error().message);
  return Finish::committed;
}

Updater::Finish Updater::roll_back(Attempt& attempt, const std::string& reason, bool reject,
                                   const std::function<Status()>& also) {
  const Release& r = attempt.release;
  Installer& installer = *attempt.installer;
  const std::string& name = installer.name();
  set_activity("rolling back " + r.name);
  auto env = hook_env(attempt);
  const auto version_dir = installer.version_dir(r.version);
  if (std::filesystem::exists(version_dir)) {
    if (auto st = run_hooks(r.hooks.rollback, "rollback", version_dir, r.hooks.timeout, env); !st)
      record_event("warning", r.name + ": " + st.error().message);
  }
  std::string result;
  std::vector<std::string> warnings;
  if (installer.activates_by_reboot()) {
    // The committed slot boots again; while the system still runs the other one, reboot first
    // (the rollback is recorded after the reboot, in recover()).
    if (auto st = installer.restore(attempt.from_version, warnings); !st) {
      record_event("error", "rollback of " + name + ": " + st.error().message);
      return Finish::failed;  // stays rolling-back: recovery retries at the next start
    }
    auto needs = installer.restore_needs_reboot();
    if (!needs) {
      record_event("error", "rollback of " + name + ": " + needs.error().message);
      return Finish::failed;
    }
    if (*needs && reboot_still_pending(attempt)) {
      reboot_pending_ = true;
      return Finish::rebooting;
    }
    if (*needs) {
      // Why, for the record written after the reboot.
      (void)store_.put("rollback-reason:" + std::to_string(attempt.id), (reject ? "reject " : "keep ") + reason);
      auto st = reboot_device(attempt, std::nullopt, "rolling back " + r.version + "; rebooting into the committed slot");
      if (st) {
        attempt.outcome_message = "rebooting back to " + (attempt.from_version.empty() ? "the committed slot" : attempt.from_version);
        return Finish::rebooting;
      }
      record_event("error", "rollback of " + name + ": " + st.error().message +
                                "; the committed slot boots at the next reboot");
    }
    result = "back on " + (attempt.from_version.empty() ? std::string("the committed slot") : attempt.from_version);
  } else if (!attempt.from_version.empty() && installer.is_staged(attempt.from_version)) {
    if (auto st = installer.restore(attempt.from_version, warnings); !st) {
      record_event("error", "rollback of " + name + " to " + attempt.from_version + ": " + st.error().message);
      return Finish::failed;  // stays rolling-back: recovery retries at the next start
    }
    for (const auto& w : warnings) record_event("error", "rollback of " + name + ": " + w);
    result = "back on " + attempt.from_version;
  } else {
    // Nothing committed before this release: stop it and leave nothing switched in.
    if (auto st = installer.restore("", warnings); !st)
      record_event("error", "rollback of " + name + ": " + st.error().message);
    result = "no previous version; " + name + " stopped";
  }
  attempt.rollback_outcome = reject ? "rolled-back" : "interrupted";
  auto record = [&]() -> Status {
    if (reject) {
      if (auto st = store_.reject_release(r.target, r.version, r.payload.sha256, reason, attempt.generation); !st)
        return st;
    }
    return also ? also() : Status{};
  };
  if (!move(attempt, Event::rolled_back, result + " (" + reason + ")", record)) return Finish::failed;
  // The failed version's folder goes; a retry after an interruption unpacks it afresh.
  if (installer.current_version() != r.version) (void)installer.discard(r.version);
  log::notice(name + ": rolled back " + r.version + ": " + result);
  attempt.outcome_message = reject ? "rolled back: " + reason : "interrupted; " + result;
  return Finish::rolled_back;
}

// ---------------------------------------------------------------------------------------------
// Reboots (rootfs)

namespace {
std::string reboots_key(std::int64_t id) { return "reboots:" + std::to_string(id); }
// "<boot id> <pid of eddyd>": the boot in which the reboot was asked for, and by which eddyd (the
// update worker's parent), so that a worker of the same eddyd does not ask again.
std::string reboot_boot_key(std::int64_t id) { return "reboot-boot-id:" + std::to_string(id); }
std::string asker() { return std::to_string(::getppid()); }
}  // namespace

Status Updater::reboot_device(Attempt& attempt, std::optional<Event> event, const std::string& why) {
  Installer& installer = *attempt.installer;
  const int cap = options_.rootfs ? options_.rootfs->max_reboots : 1;
  auto counted = store_.get(reboots_key(attempt.id));
  if (!counted) return std::unexpected(counted.error());
  int reboots = 0;
  if (*counted) std::from_chars((*counted)->data(), (*counted)->data() + (*counted)->size(), reboots);
  if (reboots >= cap)
    return make_error(Errc::conflict, "update " + std::to_string(attempt.id) + " already asked for " +
                                          std::to_string(reboots) + " reboots (rootfs.max_reboots " +
                                          std::to_string(cap) + "): the reboot loop stops here");
  auto boot = installer.boot_id();
  if (!boot) return std::unexpected(boot.error());
  // The count and this boot's id go with the state: a restart finds them together.
  auto remember = [&]() -> Status {
    if (auto st = store_.put(reboots_key(attempt.id), std::to_string(reboots + 1)); !st) return st;
    return store_.put(reboot_boot_key(attempt.id), *boot + " " + asker());
  };
  if (event) {
    if (auto st = move(attempt, *event, why, remember); !st) return st;
  } else {
    if (auto st = store_.database().transaction(remember); !st) return st;
    log::notice(why);
  }
  record_event("notice", "reboot " + std::to_string(reboots + 1) + " of update " + std::to_string(attempt.id) + ": " + why);
  fault::point("reboot:before-command");
  reboot_pending_ = true;
  if (auto st = installer.reboot(); !st) {
    reboot_pending_ = false;
    return st;
  }
  return {};
}

// True when the reboot asked for is still to come and this eddyd asked for it: nothing to do but
// wait. A restarted eddyd (a crash, or a kill before the reboot command ran) asks again.
bool Updater::reboot_still_pending(Attempt& attempt) {
  auto asked = store_.get(reboot_boot_key(attempt.id));
  auto boot = attempt.installer->boot_id();
  return asked && *asked && boot && **asked == *boot + " " + asker();
}

Updater::Finish Updater::after_reboot(Attempt& attempt) {
  const Release& r = attempt.release;
  Installer& installer = *attempt.installer;
  if (reboot_still_pending(attempt)) {
    reboot_pending_ = true;
    return Finish::rebooting;
  }
  auto asked = store_.get(reboot_boot_key(attempt.id));
  auto boot = installer.boot_id();
  if (asked && *asked && boot && (*asked)->starts_with(*boot + " ")) {
    // eddyd restarted, the system did not: ask again (counted, so a reboot that never comes
    // ends at the cap).
    if (auto st = reboot_device(attempt, std::nullopt, "the reboot into " + r.version + " did not happen; asking again");
        !st) {
      std::string reason = "cannot reboot into " + r.version + ": " + st.error().message;
      (void)move(attempt, Event::boot_failed, reason);
      return roll_back(attempt, reason, false);
    }
    return Finish::rebooting;
  }
  auto running = installer.current_version();
  if (running != r.version) {
    std::string reason = "the new root file system " + r.version +
                         " did not come up: the bootloader booted the committed slot again (" +
                         running.value_or("version unknown") + ")";
    record_event("error", reason);
    if (!move(attempt, Event::boot_failed, reason)) return Finish::failed;
    return roll_back(attempt, reason, true);
  }
  set_activity("probing " + r.name);
  auto env = hook_env(attempt);
  int hook_failures = 0;
  std::string hook_failure;
  if (auto st = run_hooks(r.hooks.post_activate, "post-activate", installer.active_dir(), r.hooks.timeout, env); !st) {
    ++hook_failures;
    hook_failure = st.error().message;
    record_event("warning", r.name + ": " + hook_failure);
  }
  if (!move(attempt, Event::booted, "booted " + r.version + " from the trial slot")) return Finish::failed;
  return probe_and_commit(attempt, hook_failures, hook_failure);
}

// ---------------------------------------------------------------------------------------------
// Recovery and operator rollback

Status Updater::recover() {
  auto unfinished = store_.unfinished_update();
  if (!unfinished) return std::unexpected(unfinished.error());
  if (!*unfinished) return {};
  const auto& u = **unfinished;
  auto state = state_from_name(u.state);
  if (!state) return make_error(Errc::database, "update " + std::to_string(u.id) + " has unknown state `" + u.state + "`");
  Recovery recovery = recovery_for(*state);
  log::warning("update " + std::to_string(u.id) + " was interrupted in state " + u.state + "; recovery: " +
               std::string(recovery_name(recovery)));
  record_event("warning", "eddyd restarted during update " + std::to_string(u.id) +
                              (u.release.empty() ? "" : " (" + u.release + ")") + " in state " + u.state +
                              "; recovery: " + std::string(recovery_name(recovery)));

  Attempt attempt;
  attempt.id = u.id;
  attempt.state = *state;
  attempt.commit = u.commit_id;
  attempt.from_version = u.from_version;
  attempt.rollout = u.rollout;
  attempt.generation = u.generation;
  attempt.installer = installer_for(u.target);
  if (!u.release.empty()) {
    auto fleet = load_fleet(u.commit_id);
    if (fleet) {
      if (auto it = fleet->releases.find(u.release); it != fleet->releases.end()) attempt.release = it->second;
    }
    if (attempt.release.name.empty()) {
      // The model cannot be read back: carry on with what the row says (no hooks).
      attempt.release.name = u.release;
      attempt.release.target = u.target;
      attempt.release.version = u.version;
      attempt.release.payload.sha256 = u.sha256;
    }
  }

  switch (recovery) {
    case Recovery::nothing:
      return {};
    case Recovery::restart_cycle:
      return move(attempt, Event::interrupted, "interrupted before download; the next poll starts again");
    case Recovery::discard_staging:
      if (attempt.installer) (void)attempt.installer->discard(u.version);
      return move(attempt, Event::interrupted, "interrupted during download; partial files removed");
    case Recovery::continue_staged:
      if (!attempt.installer || attempt.release.analysis.iterations == 0) {
        if (attempt.installer) (void)attempt.installer->discard(u.version);
        return move(attempt, Event::interrupted, "staged version cannot be resumed; discarded");
      }
      activate_and_probe(attempt);
      return {};
    case Recovery::after_reboot:
      if (!attempt.installer)
        return make_error(Errc::invalid_argument, "update " + std::to_string(u.id) + " targets `" + u.target +
                                                      "`, which is no longer configured; its trial boot is not checked");
      after_reboot(attempt);
      return {};
    case Recovery::roll_back:
      if (!attempt.installer) {
        return make_error(Errc::invalid_argument, "update " + std::to_string(u.id) + " targets `" + u.target +
                                                      "`, which is no longer configured; cannot roll it back");
      }
      if (attempt.state != State::rolling_back) {
        if (auto st = move(attempt, Event::interrupted, "interrupted in " + u.state + "; rolling back"); !st) return st;
        roll_back(attempt, "interrupted in state " + u.state, false);
      } else {
        // A rollback already under way: finish it. Why it began says whether the release is
        // rejected here; an operator's rollback also moves the installed versions back.
        auto why = store_.last_event(u.id);
        bool interrupted = why && *why == event_name(Event::interrupted);
        auto inst = store_.installed(u.target);
        bool operator_rollback = inst && *inst && (*inst)->current_version == u.version &&
                                 (*inst)->previous_version == u.from_version && !u.from_version.empty();
        std::string from_release = operator_rollback ? (*inst)->previous_release : "";
        std::string reason = interrupted ? "interrupted; rollback resumed after restart" : "rollback resumed after restart";
        // A rootfs rollback that rebooted into the committed slot left its reason behind.
        auto before_reboot = store_.get("rollback-reason:" + std::to_string(u.id));
        if (before_reboot && *before_reboot && (*before_reboot)->find(' ') != std::string::npos) {
          interrupted = (*before_reboot)->starts_with("keep ");
          reason = (*before_reboot)->substr((*before_reboot)->find(' ') + 1);
        }
        roll_back(attempt, reason, !interrupted, [&]() -> Status {
                    if (!operator_rollback) return {};
                    return store_.set_current_after_rollback(u.target, u.from_version, from_release);
                  });
      }
      return {};
  }
  return {};
}

void Updater::start_apps() {
  auto installed = store_.all_installed();
  if (!installed) {
    log::error("cannot read installed versions: " + installed.error().message);
    return;
  }
  for (const auto& inst : *installed) {
    auto installer = installer_for(inst.target);
    if (!installer) continue;
    if (auto st = installer->start(inst.current_version); !st)
      log::error("cannot start " + inst.target + ": " + st.error().message);
  }
}

Expected<nlohmann::json> Updater::rollback(const std::string& requested) {
  std::string target = requested;
  if (target.empty()) {
    if (container_runtime_)
      return make_error(Errc::invalid_argument, "name the app or container to roll back (eddy rollback NAME)");
    if (options_.apps.size() != 1)
      return make_error(Errc::invalid_argument, "name the app to roll back (" + std::to_string(options_.apps.size()) +
                                                    " are configured)");
    target = options_.apps.begin()->first;
  }
  auto done = roll_back_installed(target, "rolled back by an operator");
  if (hub_) flush_reports();
  return done;
}

Expected<nlohmann::json> Updater::roll_back_installed(const std::string& target, const std::string& reason,
                                                      const std::string& rollout, std::int64_t generation) {
  auto installer = installer_for(target);
  if (!installer)
    return make_error(Errc::not_found, "no app `" + target + "` is configured" +
                                           (container_runtime_ ? std::string() : " (and containers are not set up)"));
  if (installer->activates_by_reboot())
    return make_error(Errc::conflict, "the root file system is not rolled back by command: its previous slot is "
                                      "overwritten by the next update; publish the earlier release again with "
                                      "`allowDowngrade: true` to go back");
  auto inst = store_.installed(target);
  if (!inst) return std::unexpected(inst.error());
  if (!*inst || (*inst)->previous_version.empty())
    return make_error(Errc::conflict, target + " has no previous committed version to roll back to");
  const auto& i = **inst;
  if (!installer->is_staged(i.previous_version))
    return make_error(Errc::conflict, target + " " + i.previous_version + " is no longer on disk (" +
                                          installer->version_dir(i.previous_version).parent_path().string() + ")");

  auto latest = store_.latest_update(target);
  auto accepted = store_.get("accepted_commit");
  Attempt attempt;
  attempt.installer = std::move(installer);
  attempt.commit = accepted && *accepted ? **accepted : "";
  attempt.from_version = i.previous_version;
  attempt.rollout = rollout;
  attempt.generation = generation;
  if (const Fleet* fleet = fleet_at_accepted()) {
    if (auto it = fleet->releases.find(i.current_release); it != fleet->releases.end()) attempt.release = it->second;
  }
  if (attempt.release.name.empty()) {
    attempt.release.name = i.current_release;
    attempt.release.target = target;
    attempt.release.version = i.current_version;
  }
  std::string sha = attempt.release.payload.sha256;
  if (sha.empty() && latest && *latest) sha = (*latest)->sha256;
  attempt.release.payload.sha256 = sha;

  auto row = store_.begin_update(
      attempt.commit, "rolling-back", "rollback-requested",
      storage::UpdateSubject{target, attempt.release.name, i.current_version, sha, i.previous_version, rollout, generation});
  if (!row) return std::unexpected(row.error());
  attempt.id = row->id;
  attempt.state = State::rolling_back;
  fault::point("state:rolling-back");
  Finish f = roll_back(attempt, reason, true, [&] {
    return store_.set_current_after_rollback(target, i.previous_version, i.previous_release);
  });
  if (f != Finish::rolled_back) return make_error(Errc::io, "rollback of " + target + " did not complete; see eddy history");
  return nlohmann::json{{"target", target}, {"from_version", i.current_version}, {"to_version", i.previous_version}};
}

}  // namespace eddy::ota
