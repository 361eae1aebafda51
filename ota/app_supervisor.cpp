#include "ota/app_supervisor.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

#include "platform/log.hpp"
#include "platform/process.hpp"

namespace eddy::ota {

namespace {

std::string seconds_text(std::chrono::milliseconds ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return text;
}

}  // namespace

AppSupervisor::AppSupervisor(Backoff backoff, std::function<Clock::time_point()> now)
    : backoff_(backoff), now_(std::move(now)) {}

AppSupervisor::~AppSupervisor() { stop_all(std::chrono::seconds(5)); }

std::optional<pid_t> AppSupervisor::release(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = apps_.find(name);
  if (it == apps_.end()) return std::nullopt;
  App& app = it->second;
  app.wanted = false;
  app.restart_at.reset();
  return std::exchange(app.pid, std::nullopt);
}

Status AppSupervisor::spawn(const std::string& name, App& app) {
  auto pid = process::spawn(app.argv, app.cwd, {{"EDDY_APP", name}});
  if (!pid) return std::unexpected(pid.error().with_context("start app " + name));
  app.pid = *pid;
  app.started = now_();
  app.restart_at.reset();
  log::info("app " + name + ": started " + process::describe(app.argv) + " in " +
            app.cwd.string() + " as pid " + std::to_string(*pid));
  return {};
}

Status AppSupervisor::start(const std::string& name, const std::vector<std::string>& argv,
                            const std::filesystem::path& cwd) {
  const std::string context = "start app " + name;
  if (argv.empty() || argv.front().empty())
    return make_error(Errc::invalid_argument, context + ": empty run command");
  std::error_code ec;
  std::filesystem::path resolved = std::filesystem::canonical(cwd, ec);
  if (ec)
    return make_error(ec == std::errc::no_such_file_or_directory ? Errc::not_found : Errc::io,
                      context + ": cannot resolve its folder " + cwd.string() + ": " + ec.message());

  // Stop the old process outside the lock: tick() must not wait out its grace period.
  if (auto old = release(name)) {
    log::info("app " + name + ": stopping pid " + std::to_string(*old) + " to replace it");
    process::terminate(*old, std::chrono::seconds(5));
  }

  std::lock_guard lock(mutex_);
  App& app = apps_[name];
  if (app.pid) {
    // Another start() raced this one and won; keep one process, the newest settings.
    log::warning("app " + name + ": concurrent start; keeping pid " + std::to_string(*app.pid));
    return {};
  }
  app.argv = argv;
  app.cwd = resolved;
  app.restarts = 0;
  app.delay = std::chrono::milliseconds(0);
  app.restart_at.reset();
  if (auto s = spawn(name, app); !s) {
    app.wanted = false;
    return s;
  }
  app.wanted = true;
  return {};
}

void AppSupervisor::stop(const std::string& name, std::chrono::milliseconds grace) {
  if (auto pid = release(name)) {
    log::info("app " + name + ": stopping pid " + std::to_string(*pid));
    process::terminate(*pid, grace);
  }
}

Status AppSupervisor::restart(const std::string& name, const std::vector<std::string>& argv,
                              const std::filesystem::path& cwd) {
  return start(name, argv, cwd);
}

void AppSupervisor::tick() {
  std::lock_guard lock(mutex_);
  const auto now = now_();
  for (auto& [name, app] : apps_) {
    if (app.pid) {
      int status = 0;
      pid_t w = ::waitpid(*app.pid, &status, WNOHANG);
      const int wait_errno = errno;
      if (w == 0 || (w < 0 && wait_errno == EINTR)) continue;
      const pid_t pid = *app.pid;
      app.pid.reset();
      // Whatever the leader left behind in its group would clash with the restarted one.
      ::kill(-pid, SIGKILL);
      const std::string why = w == pid ? process::describe_wait_status(status) : "was reaped elsewhere (" + std::string(std::strerror(wait_errno)) + ")";
      if (!app.wanted) continue;
      const auto ran = std::chrono::duration_cast<std::chrono::milliseconds>(now - app.started);
      if (ran >= backoff_.reset_after || app.delay.count() == 0)
        app.delay = backoff_.initial;
      else
        app.delay = std::min(app.delay * 2, backoff_.max);
      app.restart_at = now + app.delay;
      log::warning("app " + name + ": pid " + std::to_string(pid) + " " + why + " after " +
                   seconds_text(ran) + "; restarting in " + seconds_text(app.delay));
    }
    if (app.wanted && !app.pid && app.restart_at && now >= *app.restart_at) {
      if (auto s = spawn(name, app); !s) {
        app.delay = std::min(app.delay * 2, backoff_.max);
        app.restart_at = now + app.delay;
        log::error(s.error().message + "; retrying in " + seconds_text(app.delay));
      } else {
        ++app.restarts;
      }
    }
  }
}

std::optional<pid_t> AppSupervisor::pid(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = apps_.find(name);
  if (it == apps_.end()) return std::nullopt;
  return it->second.pid;
}

int AppSupervisor::restarts(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = apps_.find(name);
  return it == apps_.end() ? 0 : it->second.restarts;
}

void AppSupervisor::stop_all(std::chrono::milliseconds grace) {
  std::vector<std::pair<std::string, pid_t>> running;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, app] : apps_) {
      app.wanted = false;
      app.restart_at.reset();
      if (app.pid) running.emplace_back(name, *std::exchange(app.pid, std::nullopt));
    }
  }
  // In parallel, so that shutting down takes one grace period, not one per app.
  std::vector<std::jthread> stoppers;
  for (const auto& [name, pid] : running) {
    log::info("app " + name + ": stopping pid " + std::to_string(pid));
    stoppers.emplace_back([pid = pid, grace] { process::terminate(pid, grace); });
  }
}

Status run_restart_command(const AppTarget& target, std::chrono::milliseconds timeout) {
  const std::string context = "restart app " + target.name;
  if (target.restart.empty())
    return make_error(Errc::invalid_argument, context + ": no restart command configured");
  process::Options options;
  options.timeout = timeout;
  options.env = {{"EDDY_APP", target.name}};
  auto result = process::run_checked(target.restart, options);
  if (!result) return std::unexpected(result.error().with_context(context));
  log::info("app " + target.name + ": restarted with " + process::describe(target.restart));
  return {};
}

}  // namespace eddy::ota
