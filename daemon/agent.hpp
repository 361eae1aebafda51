// eddyd's wiring: the update engine on a worker thread of its own, polls scheduled on the
// event loop (jittered interval, backoff after failures, earlier when a rollout step opens),
// and the control socket's requests served from both.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "daemon/config.hpp"
#include "daemon/control_handler.hpp"
#include "ota/app_supervisor.hpp"
#include "ota/poll_schedule.hpp"
#include "ota/updater.hpp"
#include "platform/event_loop.hpp"

namespace eddy::daemon {

ota::UpdaterOptions updater_options(const Config& config);

class Agent final : public ControlHandler {
 public:
  Agent(Config config, EventLoop& loop);
  ~Agent() override;

  // Open the state store and repository; then, on the worker: recover an interrupted update,
  // start the apps, and poll.
  Status start();
  // Stop polling, interrupt an analysis (its state stays persisted for recovery), join the
  // worker and stop the apps. Safe to call from any thread but the worker.
  void shutdown();

  ota::AppSupervisor& supervisor() { return supervisor_; }

  nlohmann::json status() override;
  nlohmann::json history(int limit) override;
  Expected<nlohmann::json> check() override;
  Expected<nlohmann::json> rollback(const std::string& target) override;

 private:
  void worker_main();
  void enqueue(std::function<void()> job);
  void poll(bool scheduled);
  void schedule_next(const ota::CycleResult& result);

  Config config_;
  EventLoop& loop_;
  ota::AppSupervisor supervisor_;
  std::unique_ptr<ota::Updater> updater_;
  ota::PollSchedule schedule_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  bool scheduled_poll_queued_ = false;
  TimerHandle next_poll_;
  std::thread worker_;
};

}  // namespace eddy::daemon
