// eddyd keeps an app's `run` command alive: started in the app's version folder, restarted with
// exponential backoff when it exits, stopped by process group. Apps with a `restart` command
// instead are managed elsewhere (systemd) and only told to restart.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ota/app_control.hpp"
#include "ota/app_installer.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

class AppSupervisor final : public AppControl {
 public:
  using Clock = std::chrono::steady_clock;
  struct Backoff {
    std::chrono::milliseconds initial{std::chrono::seconds(1)};   // first restart delay
    std::chrono::milliseconds max{std::chrono::seconds(60)};      // doubling stops here
    std::chrono::milliseconds reset_after{std::chrono::seconds(60)};  // a run this long resets it
  };

  AppSupervisor() : AppSupervisor(Backoff{}) {}
  // `now` replaces the steady clock in tests.
  explicit AppSupervisor(Backoff backoff, std::function<Clock::time_point()> now = Clock::now);
  // Stops every supervised process (grace of 5 s) so that none outlives eddyd unsupervised.
  ~AppSupervisor() override;
  AppSupervisor(const AppSupervisor&) = delete;
  AppSupervisor& operator=(const AppSupervisor&) = delete;

  // Start (or replace) the supervised process of `name`: argv in cwd, where cwd (the app's
  // `current` link) is resolved to the real version folder now, so that a running process and
  // its restarts stay in their version. Output is inherited; the environment gets EDDY_APP=<name>.
  // A process already running under `name` is stopped first (5 s grace).
  Status start(const std::string& name, const std::vector<std::string>& argv,
               const std::filesystem::path& cwd);
  // SIGTERM to the process group, SIGKILL after `grace`; no restarts until started again.
  void stop(const std::string& name, std::chrono::milliseconds grace);
  void stop(const std::string& name) override { stop(name, std::chrono::seconds(5)); }
  Status restart(const std::string& name, const std::vector<std::string>& argv,
                 const std::filesystem::path& cwd) override;

  // From the event loop (every 200 ms or so): reaps exited children (waitpid on their own pids
  // only), logs why they ended, and restarts them when their backoff has passed.
  void tick();

  std::optional<pid_t> pid(const std::string& name) const;
  // Restarts after exits since the last start()/restart().
  int restarts(const std::string& name) const;
  void stop_all(std::chrono::milliseconds grace);

 private:
  struct App {
    std::vector<std::string> argv;
    std::filesystem::path cwd;           // resolved version folder
    std::optional<pid_t> pid;
    Clock::time_point started{};
    std::optional<Clock::time_point> restart_at;  // set while waiting out a backoff
    std::chrono::milliseconds delay{0};            // last backoff; 0 before the first exit
    int restarts = 0;
    bool wanted = false;                           // supervised (false after stop)
  };

  // Takes the app out of supervision and returns its pid for the caller to terminate unlocked.
  std::optional<pid_t> release(const std::string& name);
  Status spawn(const std::string& name, App& app);  // with mutex_ held

  Backoff backoff_;
  std::function<Clock::time_point()> now_;
  mutable std::mutex mutex_;
  std::map<std::string, App> apps_;
};

// Restart an externally managed app through its `restart` command (run to completion within
// `timeout`; a non-zero exit or timeout is an error naming the command and its output).
Status run_restart_command(const AppTarget& target, std::chrono::milliseconds timeout);

}  // namespace eddy::ota
