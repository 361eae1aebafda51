#include "daemon/update_worker.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "daemon/version.hpp"
#include "platform/log.hpp"
#include "platform/process.hpp"
#include "platform/unique_fd.hpp"

namespace eddy::daemon {

namespace stdfs = std::filesystem;

Expected<stdfs::path> find_worker_executable() {
  if (const char* env = std::getenv("EDDY_WORKER"); env && *env) {
    stdfs::path path(env);
    if (::access(path.c_str(), X_OK) != 0)
      return make_error(Errc::not_found, "EDDY_WORKER names " + path.string() +
                                             ", which is not an executable file; unset it to use the installed worker");
    return path;
  }
  // Beside eddyd first (a build tree, or any prefix), then where this build installs it. The
  // second also covers a root without /proc mounted (a chroot, an image being built), where
  // eddyd cannot learn its own path.
  std::vector<stdfs::path> places;
  std::error_code ec;
  auto self = stdfs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const stdfs::path folder = self.parent_path();
    places.push_back(folder / "eddyd-worker");
    places.push_back((folder / EDDY_WORKER_FROM_EDDYD).lexically_normal());
  }
  places.push_back(EDDY_WORKER_INSTALLED);
  std::string looked;
  for (const auto& place : places) {
    if (::access(place.c_str(), X_OK) == 0) return place;
    looked += (looked.empty() ? "" : ", ") + place.string();
  }
  if (ec) looked += "; /proc/self/exe: " + ec.message();
  return make_error(Errc::not_found, "cannot find eddyd's update worker eddyd-worker (looked at " + looked +
                                         "): reinstall the eddy package, or name it with EDDY_WORKER");
}

UpdateWorker::UpdateWorker(WorkerSettings settings, WorkerHost& host) : settings_(std::move(settings)), host_(host) {}

std::optional<pid_t> UpdateWorker::pid() const {
  std::lock_guard lock(mutex_);
  return pid_;
}

void UpdateWorker::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  if (pid_) ::kill(*pid_, SIGTERM);
}

void UpdateWorker::kill() {
  std::lock_guard lock(mutex_);
  if (pid_) ::kill(*pid_, SIGKILL);
}

WorkerResult UpdateWorker::run(worker_protocol::Job job) {
  auto failed = [](Error e) { return WorkerResult{std::move(e), nlohmann::json()}; };
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return failed(errno_error(errno, "socketpair", "for the update worker"));
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);

  std::map<std::string, std::string> env;
#ifdef EDDY_FAULT_INJECTION
  // A fault point reached in the worker stops eddyd too: a power cut of the whole agent.
  env["EDDY_FAULT_KILL_ALSO"] = std::to_string(::getpid());
#endif
  const auto started = std::chrono::steady_clock::now();
  pid_t pid = 0;
  {
    // Under the lock: stop() either sees this worker's pid or made us not start one.
    std::lock_guard lock(mutex_);
    if (stopping_) return failed(Error{Errc::conflict, "eddyd is stopping; no update worker started"});
    auto spawned = process::spawn({settings_.executable.string(), "--socket-fd", "3"}, {}, env, -1, theirs.get());
    if (!spawned) return failed(spawned.error().with_context("start the update worker"));
    pid = *spawned;
    pid_ = pid;
  }
  theirs.reset();
  log::debug("update worker pid " + std::to_string(pid) + " started for a " + job.kind);

  LineChannel channel(std::move(ours), "update worker pid " + std::to_string(pid));
  job.version = std::string(version());
  job.eddyd_pid = ::getpid();
  job.config_file = settings_.config_file;
  job.config = settings_.config;
  WorkerResult result;
  if (auto st = channel.write(worker_protocol::to_line(worker_protocol::job_json(job))); !st)
    result.failure = st.error();
  else
    result = converse(channel);
  if (result.failure) ::kill(pid, SIGKILL);  // whatever it is doing, it is no longer heard

  int status = reap(pid, settings_.exit_grace, job.kind, started);
  if (!result.failure) return result;
  std::string how = process::describe_wait_status(status);
  Error failure = *result.failure;
  // Errc::network: its socket closed or broke, so it ended (or was ending): its wait status says how.
  if (failure.code == Errc::network)
    failure = Error{Errc::process, "the update worker (pid " + std::to_string(pid) + ") " + how + " during a " +
                                       job.kind + " before reporting its result"};
  else
    failure.message += " (the update worker pid " + std::to_string(pid) + " was stopped: " + how + ")";
  return WorkerResult{failure, nlohmann::json()};
}

WorkerResult UpdateWorker::converse(LineChannel& channel) {
  auto protocol_error = [&](const std::string& what) {
    return WorkerResult{Error{Errc::internal, channel.what() + " broke the protocol: " + what}, nlohmann::json()};
  };
  for (;;) {
    auto line = channel.read();
    if (!line) return WorkerResult{line.error(), nlohmann::json()};
    if (!*line) return WorkerResult{Error{Errc::network, channel.what() + " closed its socket"}, nlohmann::json()};
    auto message = nlohmann::json::parse(**line, nullptr, false);
    if (message.is_discarded() || !message.is_object()) {
      std::string shown = line->value().substr(0, 200);
      return protocol_error("a line that is not a JSON object: " + shown);
    }
    if (auto it = message.find("result"); it != message.end()) return WorkerResult{std::nullopt, *it};
    if (auto it = message.find("error"); it != message.end())
      return WorkerResult{std::nullopt, std::unexpected(worker_protocol::error_from_json(*it))};
    if (auto it = message.find("activity"); it != message.end() && it->is_string()) {
      host_.worker_activity(it->get<std::string>());
      continue;
    }
    if (auto it = message.find("update"); it != message.end() && (it->is_object() || it->is_null())) {
      host_.worker_update(*it);
      continue;
    }
    if (auto it = message.find("hub_tls_session"); it != message.end()) {
      auto session = worker_protocol::session_from_json(*it);
      if (!session) return protocol_error(session.error().message);  // names no secret
      host_.worker_hub_session(std::move(*session));
      continue;
    }
    if (auto it = message.find("apps_started"); it != message.end() && it->is_boolean()) {
      if (it->get<bool>()) host_.worker_started_apps();
      continue;
    }
    auto app = message.find("app");
    auto name = message.find("name");
    if (app == message.end() || !app->is_string() || name == message.end() || !name->is_string())
      return protocol_error("an unknown message: " + worker_protocol::to_line(message).substr(0, 200));
    Status done;
    if (*app == "stop") {
      host_.worker_apps().stop(name->get<std::string>());
    } else if (*app == "restart") {
      auto argv = message.find("argv");
      auto cwd = message.find("cwd");
      if (argv == message.end() || !argv->is_array() || cwd == message.end() || !cwd->is_string())
        return protocol_error("a restart without \"argv\" and \"cwd\": " + worker_protocol::to_line(message));
      std::vector<std::string> words;
      for (const auto& word : *argv) {
        if (!word.is_string()) return protocol_error("a restart whose argv holds a non-string");
        words.push_back(word.get<std::string>());
      }
      done = host_.worker_apps().restart(name->get<std::string>(), words, cwd->get<std::string>());
    } else {
      return protocol_error("an unknown app request \"" + app->get<std::string>() + "\"");
    }
    nlohmann::json reply = done ? nlohmann::json{{"ok", true}}
                                : nlohmann::json{{"ok", false}, {"error", worker_protocol::error_json(done.error())}};
    if (auto st = channel.write(worker_protocol::to_line(reply)); !st)
      return WorkerResult{st.error(), nlohmann::json()};
  }
}

int UpdateWorker::reap(pid_t pid, std::chrono::milliseconds grace, const std::string& job,
                       std::chrono::steady_clock::time_point started) {
  // Its socket is closed, so it is exiting; a worker that lingers anyway is killed.
  // (glibc 2.36's <sys/pidfd.h> lacks extern "C": the system call directly.)
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd) {
    pollfd p{pidfd.get(), POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, static_cast<int>(grace.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      log::warning("update worker pid " + std::to_string(pid) + " did not exit " + std::to_string(grace.count()) +
                   " ms after closing its socket; killing it");
      ::kill(pid, SIGKILL);
    }
  }
  {
    // No signal may reach the pid once it is reaped: another process may get it.
    std::lock_guard lock(mutex_);
    pid_.reset();
  }
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  auto ms = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1000.0 + static_cast<double>(t.tv_usec) / 1000.0;
  };
  char line[200];
  std::snprintf(line, sizeof line, "update worker pid %d: %s took %.0f ms, %.1f ms of CPU, peak RSS %.1f MiB", pid,
                job.c_str(),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count(),
                ms(usage.ru_utime) + ms(usage.ru_stime), static_cast<double>(usage.ru_maxrss) / 1024.0);
  log::debug(line);
  return status;
}

}  // namespace eddy::daemon
