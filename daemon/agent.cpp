#include "daemon/agent.hpp"

#include <future>

#include "platform/log.hpp"
#include "platform/systemd.hpp"
#include "storage/state_store.hpp"

namespace eddy::daemon {

ota::UpdaterOptions updater_options(const Config& config) {
  ota::UpdaterOptions o;
  o.device.id = config.device_id;
  o.device.labels = config.labels;
  o.source_url = config.source_url;
  o.source_branch = config.source_branch;
  o.allowed_signers = config.allowed_signers;
  o.data_dir = config.data_dir;
  if (config.hub_url) {
    ota::HubOptions hub;
    hub.url = *config.hub_url;
    hub.token_file = config.hub_token_file;
    hub.ca_file = config.hub_ca_file;
    hub.outbox_limit = config.hub_outbox_limit;
    o.hub = std::move(hub);
  }
  for (const auto& [name, app] : config.apps) {
    ota::AppTarget t;
    t.name = name;
    t.dir = app.dir;
    t.run = app.run;
    t.restart = app.restart;
    t.max_unpacked_bytes = app.max_unpacked_bytes;
    t.keep_versions = app.keep_versions;
    o.apps.emplace(name, std::move(t));
  }
  return o;
}

Agent::Agent(Config config, EventLoop& loop)
    : config_(std::move(config)), loop_(loop), schedule_(config_.source_interval) {}

Agent::~Agent() { shutdown(); }

Status Agent::start() {
  auto updater = ota::Updater::create(updater_options(config_), supervisor_);
  if (!updater) return std::unexpected(updater.error());
  updater_ = std::move(*updater);
  updater_->set_activity_listener([](const std::string& activity) { (void)systemd::notify_status(activity); });
  worker_ = std::thread([this] { worker_main(); });
  enqueue([this] {
    if (auto st = updater_->recover(); !st) log::error("recovery: " + st.error().message);
    updater_->start_apps();
  });
  enqueue([this] { poll(true); });
  {
    std::lock_guard lock(mutex_);
    scheduled_poll_queued_ = true;
  }
  return {};
}

void Agent::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
  }
  next_poll_.cancel();
  if (updater_) updater_->request_stop();
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  supervisor_.stop_all(std::chrono::seconds(10));
}

void Agent::worker_main() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) {
        // Jobs still queued carry promises: answer them so no client waits forever.
        jobs_.clear();
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

void Agent::enqueue(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void Agent::poll(bool scheduled) {
  if (scheduled) {
    std::lock_guard lock(mutex_);
    scheduled_poll_queued_ = false;
  }
  auto result = updater_->run_cycle();
  schedule_next(result);
}

void Agent::schedule_next(const ota::CycleResult& result) {
  auto delay = schedule_.next_delay(result.poll_failed);
  if (result.next_step_at) {
    // A rollout step opens sooner than the next poll: look again right after it opens.
    auto until_step = std::chrono::seconds(*result.next_step_at - storage::unix_now() + 1);
    if (until_step < delay) delay = std::max<std::chrono::milliseconds>(until_step, std::chrono::seconds(1));
  }
  updater_->set_next_poll_at(storage::unix_now() + std::chrono::duration_cast<std::chrono::seconds>(delay).count());
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

nlohmann::json Agent::status() {
  if (!updater_) return nlohmann::json{{"state", "starting"}};
  return updater_->status_json();
}

nlohmann::json Agent::history(int limit) {
  if (!updater_) return nlohmann::json{{"entries", nlohmann::json::array()}};
  return updater_->history_json(limit);
}

Expected<nlohmann::json> Agent::check() {
  auto promise = std::make_shared<std::promise<ota::CycleResult>>();
  auto future = promise->get_future();
  enqueue([this, promise] {
    auto result = updater_->run_cycle();
    schedule_next(result);
    promise->set_value(result);
  });
  if (future.wait_for(std::chrono::hours(6)) != std::future_status::ready)
    return make_error(Errc::timeout, "the poll did not finish");
  ota::CycleResult r;
  try {
    r = future.get();
  } catch (const std::future_error&) {
    return make_error(Errc::conflict, "eddyd is shutting down");
  }
  return nlohmann::json{{"outcome", r.outcome}, {"commit", r.commit}, {"message", r.message}};
}

Expected<nlohmann::json> Agent::rollback(const std::string& target) {
  auto promise = std::make_shared<std::promise<Expected<nlohmann::json>>>();
  auto future = promise->get_future();
  enqueue([this, promise, target] { promise->set_value(updater_->rollback(target)); });
  try {
    return future.get();
  } catch (const std::future_error&) {
    return make_error(Errc::conflict, "eddyd is shutting down");
  }
}

}  // namespace eddy::daemon
