#include "daemon/agent.hpp"

#include <malloc.h>

#include <future>

#include "ota/hub_status.hpp"
#include "ota/remote_tip.hpp"
#include "platform/fs.hpp"
#include "platform/log.hpp"
#include "platform/systemd.hpp"

namespace eddy::daemon {

Agent::Agent(Config config, WorkerSettings worker, EventLoop& loop)
    : config_(std::move(config)), loop_(loop), worker_(std::move(worker), *this), schedule_(config_.source_interval) {}

Agent::~Agent() { shutdown(); }

Status Agent::start() {
  if (auto st = fs::create_directories(config_.data_dir, 0750); !st) return st;
  auto store = storage::StateStore::open(config_.data_dir / "eddy.db");
  if (!store) return std::unexpected(store.error());
  {
    std::lock_guard lock(store_mutex_);
    store_ = std::move(*store);
  }
  job_thread_ = std::thread([this] { job_thread_main(); });
  {
    std::lock_guard lock(mutex_);
    scheduled_poll_queued_ = true;
  }
  enqueue([this] { poll(true); });
  return {};
}

void Agent::shutdown(std::chrono::milliseconds worker_grace) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !job_thread_.joinable()) return;
    stopping_ = true;
  }
  next_poll_.cancel();
  wake_.notify_all();
  worker_.stop();
  {
    std::unique_lock lock(mutex_);
    if (!idle_.wait_for(lock, worker_grace, [&] { return !job_running_; })) {
      lock.unlock();
      log::warning("the update worker did not stop within " + std::to_string(worker_grace.count() / 1000) +
                   " s; killing it (its state stays persisted for the next start)");
      worker_.kill();
    }
  }
  if (job_thread_.joinable()) job_thread_.join();
  supervisor_.stop_all(std::chrono::seconds(10));
}

void Agent::job_thread_main() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) {
        // Jobs still queued carry promises: dropping them answers their clients.
        jobs_.clear();
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
      job_running_ = true;
    }
    job();
    // What the job allocated and freed (the worker's JSON lines, a hub sync's TLS records and
    // answers) goes back to the system rather than waiting in malloc's free lists for the next
    // poll: about 0.1 MiB of resident heap (bench/RESULTS.md, issue 2). Microseconds.
    ::malloc_trim(0);
    {
      std::lock_guard lock(mutex_);
      job_running_ = false;
    }
    idle_.notify_all();
  }
}

void Agent::enqueue(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;  // dropped: a promise it holds is broken, which answers its client
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

WorkerResult Agent::run_job(worker_protocol::Job job) {
  quiet_.reset();  // whatever the job does, the next poll's worker looks again
  job.start_apps = !apps_started_;
  if (auto sessions = hub_sessions_.all(); !sessions.empty()) job.hub_session = sessions.back();
  const std::string kind = job.kind;
  {
    std::lock_guard lock(mutex_);
    live_.worker = {{"job", kind}, {"since", storage::unix_now()}};
  }
  WorkerResult result = worker_.run(std::move(job));
  {
    std::lock_guard lock(mutex_);
    live_.worker = nullptr;
    live_.update = nullptr;
  }
  if (result.failure && result.failure->code == Errc::conflict) {
    log::notice(result.failure->message);  // not started: eddyd is stopping
  } else if (result.failure) {
    // Its update, if it was in one, stays persisted where it was cut short: the next worker
    // starts by recovering it, as after a power cut.
    const Error& e = *result.failure;
    log::error(e.message);
    std::lock_guard lock(store_mutex_);
    if (store_) {
      (void)store_->record_event("error", e.message + "; the next job recovers an interrupted update first");
      if (kind == "poll") {
        (void)store_->put("last_poll_at", std::to_string(storage::unix_now()));
        (void)store_->put("last_poll_result", "failed: " + e.message);
      }
    }
  }
  return result;
}

nlohmann::json Agent::poll(bool scheduled) {
  if (scheduled) {
    std::lock_guard lock(mutex_);
    scheduled_poll_queued_ = false;
  }
  if (auto reply = poll_without_worker()) {
    schedule_next(false, std::nullopt);
    return *reply;
  }
  worker_protocol::Job job;
  job.kind = "poll";
  auto result = run_job(std::move(job));
  auto failed = [](const Error& e) {
    worker_protocol::PollResult out;
    out.reply = {{"outcome", "failed"}, {"commit", ""}, {"message", e.message}};
    out.poll_failed = true;
    return out;
  };
  worker_protocol::PollResult poll;
  if (result.failure) {
    poll = failed(*result.failure);
  } else if (!result.job) {
    bool stopping;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
    }
    log::write(stopping ? log::Level::notice : log::Level::error, "poll: " + result.job.error().message);
    poll = failed(result.job.error());
  } else if (auto parsed = worker_protocol::poll_result_from_json(*result.job); !parsed) {
    log::error("poll: " + parsed.error().message);
    poll = failed(parsed.error());
  } else {
    poll = std::move(*parsed);
  }
  if (result.failure || !result.job) worker_activity("the last poll failed; retrying later");
  remember_quiet(poll);
  schedule_next(poll.poll_failed, poll.next_step_at);
  return poll.reply;
}

void Agent::remember_quiet(const worker_protocol::PollResult& poll) {
  // "up-to-date" is the worker's word when the tip is accepted and it installed, refused,
  // failed and rolled back nothing and nothing waits; with a hub, "not-admitted" when what
  // waits, waits for the hub's admission alone. The store must agree the tip is accepted.
  const std::string commit = poll.reply.value("commit", "");
  const std::string outcome = poll.reply.value("outcome", "");
  if (poll.poll_failed || poll.next_step_at || commit.size() != 40) return;
  if (outcome != "up-to-date" && !(config_.hub_url && outcome == "not-admitted")) return;
  Quiet quiet{commit, std::nullopt, poll.reply};
  std::lock_guard lock(store_mutex_);
  if (!store_) return;
  auto accepted = store_->get("accepted_commit");
  if (!accepted || !*accepted || **accepted != commit) return;
  if (config_.hub_url) {
    // The answer the worker acted on, as it recorded it, if this poll's sync went through and
    // left no report unsent.
    auto result = store_->get(ota::kHubLastSyncResult);
    auto raw = store_->get(ota::kHubLastSync);
    auto outbox = store_->outbox_size();
    if (!result || !*result || **result != "ok" || !raw || !*raw || !outbox || *outbox != 0) return;
    auto answer = ota::parse_sync_response(nlohmann::json::parse(**raw, nullptr, false));
    if (!answer) return;
    quiet.hub = std::move(*answer);
  }
  quiet_ = std::move(quiet);
}

bool Agent::hub_still_quiet() {
  // https: only over the hub session the worker left (hub_sessions_), never a full handshake.
  auto client = ota::HubClient::create(
      ota::HubOptions{*config_.hub_url, config_.hub_token_file, config_.hub_ca_file, std::chrono::seconds(5),
                      config_.hub_outbox_limit, &hub_sessions_, true},
      config_.device_id);
  if (!client) return false;
  std::vector<std::string> targets;
  for (const auto& [name, app] : config_.apps) targets.push_back(name);
  ota::SyncRequest request;
  {
    std::lock_guard lock(store_mutex_);
    if (!store_) return false;
    auto outbox = store_->outbox_size();
    if (!outbox || *outbox != 0) {
      log::debug("poll: reports wait in the outbox; the update worker sends them");
      return false;
    }
    request = ota::sync_request_from_store(*store_, config_.labels, targets, quiet_->tip);
  }
  // Not under the store's lock: `eddy status` answers while the hub is asked.
  auto answer = client->sync(request);
  if (!answer) {
    // Unreachable, refused, garbled: the worker syncs again, records it and backs off.
    log::debug("poll: " + answer.error().message + "; the update worker syncs");
    return false;
  }
  {
    std::lock_guard lock(store_mutex_);
    if (!store_) return false;
    ota::record_sync_answer(*store_, *answer);
  }
  if (!ota::same_answer(*answer, *quiet_->hub)) {
    log::debug("poll: the hub's answer changed; the update worker acts on it");
    return false;
  }
  return true;
}

std::optional<nlohmann::json> Agent::poll_without_worker() {
  if (!quiet_) return std::nullopt;
  // A short deadline: a silent server costs the worker's fetch its own, and stopping eddyd
  // waits for this job.
  auto tip = ota::remote_tip(config_.source_url, config_.source_branch, std::chrono::seconds(5));
  if (!tip) {
    log::debug("poll: " + tip.error().message + "; the update worker fetches");
    return std::nullopt;
  }
  if (*tip != quiet_->tip) {
    log::debug("poll: the branch " + config_.source_branch + " moved to " + tip->substr(0, 7) +
               "; the update worker fetches");
    return std::nullopt;
  }
  if (config_.hub_url && !hub_still_quiet()) return std::nullopt;
  const std::string short_tip = tip->substr(0, 7);
  const std::string outcome = quiet_->reply.value("outcome", "up-to-date");
  {
    std::lock_guard lock(store_mutex_);
    if (!store_) return std::nullopt;
    (void)store_->put("last_poll_at", std::to_string(storage::unix_now()));
    (void)store_->put("last_poll_result", outcome);
  }
  log::debug("poll: the branch " + config_.source_branch + " is still at " + short_tip +
             (config_.hub_url ? " and the hub answers as before" : "") + "; no update worker needed");
  worker_activity("idle at " + short_tip + "; waiting for the next poll");
  return quiet_->reply;
}

void Agent::schedule_next(bool poll_failed, std::optional<std::int64_t> next_step_at) {
  auto delay = schedule_.next_delay(poll_failed);
  if (next_step_at) {
    // A rollout step opens sooner than the next poll: look again right after it opens.
    auto until_step = std::chrono::seconds(*next_step_at - storage::unix_now() + 1);
    if (until_step < delay) delay = std::max<std::chrono::milliseconds>(until_step, std::chrono::seconds(1));
  }
  {
    std::lock_guard lock(mutex_);
    live_.next_poll_at = storage::unix_now() + std::chrono::duration_cast<std::chrono::seconds>(delay).count();
  }
  log::debug("next poll in " + std::to_string(delay.count()) + " ms");
  loop_.post([this, delay] {
    next_poll_.cancel();
    next_poll_ = loop_.after(delay, [this] {
      {
        std::lock_guard lock(mutex_);
        if (stopping_ || scheduled_poll_queued_) return;
        scheduled_poll_queued_ = true;
      }
      enqueue([this] { poll(true); });
    });
  });
}

void Agent::worker_activity(const std::string& text) {
  {
    std::lock_guard lock(mutex_);
    live_.activity = text;
  }
  (void)systemd::notify_status(text);
}

void Agent::worker_update(const nlohmann::json& update) {
  std::lock_guard lock(mutex_);
  live_.update = update;
}

nlohmann::json Agent::status() {
  LiveStatus live;
  {
    std::lock_guard lock(mutex_);
    live = live_;
  }
  if (live.worker.is_object()) {
    auto pid = worker_.pid();
    live.worker["pid"] = pid ? nlohmann::json(*pid) : nlohmann::json(nullptr);
  }
  std::lock_guard lock(store_mutex_);
  if (!store_) return nlohmann::json{{"state", "starting"}};
  return status_json(config_, *store_, supervisor_, live);
}

nlohmann::json Agent::history(int limit) {
  std::lock_guard lock(store_mutex_);
  if (!store_) return nlohmann::json{{"entries", nlohmann::json::array()}};
  return history_json(*store_, limit);
}

Expected<nlohmann::json> Agent::check() {
  auto promise = std::make_shared<std::promise<nlohmann::json>>();
  auto future = promise->get_future();
  enqueue([this, promise] { promise->set_value(poll(false)); });
  if (future.wait_for(std::chrono::hours(6)) != std::future_status::ready)
    return make_error(Errc::timeout, "the poll did not finish within 6 hours");
  try {
    return future.get();
  } catch (const std::future_error&) {
    return make_error(Errc::conflict, "eddyd is shutting down");
  }
}

Expected<nlohmann::json> Agent::rollback(const std::string& target) {
  auto promise = std::make_shared<std::promise<Expected<nlohmann::json>>>();
  auto future = promise->get_future();
  enqueue([this, promise, target] {
    worker_protocol::Job job;
    job.kind = "rollback";
    job.target = target;
    auto result = run_job(std::move(job));
    promise->set_value(result.failure ? Expected<nlohmann::json>(std::unexpected(*result.failure)) : result.job);
  });
  try {
    return future.get();
  } catch (const std::future_error&) {
    return make_error(Errc::conflict, "eddyd is shutting down");
  }
}

}  // namespace eddy::daemon
