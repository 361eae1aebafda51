#include "daemon/worker/worker.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "daemon/version.hpp"
#include "daemon/worker_protocol.hpp"
#include "platform/line_channel.hpp"
#include "platform/log.hpp"

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
  if (config.containers) {
    ota::ContainerOptions c;
    // Not found: podman, whose missing command then says so at the first container release
    // (eddyd --check-config reports it before).
    c.runtime = discover_runtime(config.containers->runtime).value_or(RuntimeKind::podman);
    c.keep_images = config.containers->keep;
    o.containers = c;
  }
  if (config.rootfs) {
    ota::RootfsOptions r;
    r.slot_a = config.rootfs->slot_a;
    r.slot_b = config.rootfs->slot_b;
    r.booted = config.rootfs->booted;
    r.bootloader = config.rootfs->bootloader;
    r.reboot = config.rootfs->reboot;
    r.max_reboots = config.rootfs->max_reboots;
    r.boot_id = config.rootfs->boot_id;
    o.rootfs = std::move(r);
  }
  return o;
}

namespace {

using worker_protocol::error_json;
using worker_protocol::to_line;

// eddyd at the other end of the socket: what the worker tells it, and the apps it supervises
// (the Updater's AppControl). Used from the Updater's thread only.
class EddydLink final : public ota::AppControl {
 public:
  explicit EddydLink(LineChannel& channel) : channel_(channel) {}

  // False once eddyd cannot be told anything (it is gone; the worker ends soon after).
  bool send(const nlohmann::json& message) {
    if (auto st = channel_.write(to_line(message)); !st) {
      log::error("update worker: " + st.error().message);
      return false;
    }
    return true;
  }

  Status restart(const std::string& name, const std::vector<std::string>& argv,
                 const std::filesystem::path& cwd) override {
    return call({{"app", "restart"}, {"name", name}, {"argv", argv}, {"cwd", cwd.string()}});
  }

  void stop(const std::string& name) override {
    if (auto st = call({{"app", "stop"}, {"name", name}}); !st) log::error(st.error().message);
  }

 private:
  Status call(const nlohmann::json& request) {
    const std::string what =
        "ask eddyd to " + request["app"].get<std::string>() + " app " + request["name"].get<std::string>();
    if (auto st = channel_.write(to_line(request)); !st) return std::unexpected(st.error().with_context(what));
    auto line = channel_.read();
    if (!line) return std::unexpected(line.error().with_context(what));
    if (!*line) return make_error(Errc::network, what + ": eddyd closed the connection");
    auto reply = nlohmann::json::parse(**line, nullptr, false);
    if (reply.is_object() && reply.value("ok", false)) return {};
    if (reply.is_object() && reply.contains("error"))
      return std::unexpected(worker_protocol::error_from_json(reply["error"]));
    return make_error(Errc::internal, what + ": eddyd answered " + **line);
  }

  LineChannel& channel_;
};

// Download progress changes with every block read; `eddy status` needs it a few times a second
// at most. Any other change (a new state) goes at once.
class UpdateForwarder {
 public:
  explicit UpdateForwarder(EddydLink& link) : link_(link) {}
  void operator()(const nlohmann::json& update) {
    nlohmann::json steady = update;
    if (steady.is_object()) steady.erase("progress");
    auto now = std::chrono::steady_clock::now();
    if (sent_once_ && steady == last_steady_ && now - last_sent_ < std::chrono::milliseconds(250)) return;
    sent_once_ = true;
    last_steady_ = std::move(steady);
    last_sent_ = now;
    link_.send({{"update", update}});
  }

 private:
  EddydLink& link_;
  bool sent_once_ = false;
  nlohmann::json last_steady_;
  std::chrono::steady_clock::time_point last_sent_;
};

// SIGTERM (eddyd stopping) interrupts the job: the Updater stops its analysis, whose state
// stays persisted for recovery at the next start. The signals are blocked in every thread and
// taken by one thread of their own.
class StopOnSignal {
 public:
  StopOnSignal() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    // It waits for the process's lifetime; exit ends it.
    std::thread([this] { wait(); }).detach();
  }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  void attach(ota::Updater* updater) {
    std::lock_guard lock(mutex_);
    updater_ = updater;
    if (updater_ && signalled_) updater_->request_stop();
  }
  bool signalled() {
    std::lock_guard lock(mutex_);
    return signalled_;
  }

 private:
  void wait() {
    int signal = 0;
    if (sigwait(&signals_, &signal) != 0) return;
    log::notice("update worker: stopping (" + std::string(signal == SIGTERM ? "SIGTERM" : "SIGINT") + ")");
    std::lock_guard lock(mutex_);
    signalled_ = true;
    if (updater_) updater_->request_stop();
  }

  sigset_t signals_;
  std::mutex mutex_;
  ota::Updater* updater_ = nullptr;
  bool signalled_ = false;
};

nlohmann::json poll_result_json(const ota::CycleResult& r) {
  return {{"outcome", r.outcome},
          {"commit", r.commit},
          {"message", r.message},
          {"poll_failed", r.poll_failed},
          {"next_step_at", r.next_step_at ? nlohmann::json(*r.next_step_at) : nlohmann::json(nullptr)}};
}

}  // namespace

int run_update_worker(UniqueFd fd) {
  // Never destroyed: its thread may still wake while the process exits.
  static auto& stop_signal = *new StopOnSignal;
  LineChannel channel(std::move(fd), "eddyd");
  EddydLink link(channel);
  // eddyd logs the error, or hands it to the `eddy` command that asked.
  auto report_error = [&](const Error& e) {
    if (link.send({{"error", error_json(e)}})) return 0;
    log::error("update worker: " + e.message);
    return 1;
  };

  auto line = channel.read();
  if (!line || !*line) {
    log::error("update worker: no job from eddyd" + (line ? std::string() : ": " + line.error().message));
    return 1;
  }
  auto message = nlohmann::json::parse(**line, nullptr, false);
  auto job = worker_protocol::job_from_json(message);
  if (!job) return report_error(job.error().with_context("the job from eddyd"));
  if (job->eddyd_pid != ::getppid()) {
    // eddyd died before the parent-death signal was armed: nobody waits for this job.
    log::error("update worker: eddyd (pid " + std::to_string(job->eddyd_pid) + ") is gone; not starting the job");
    return 1;
  }
  if (job->version != version())
    return report_error(Error{Errc::conflict, "eddyd " + job->version + " started the update worker of eddy " +
                                                  std::string(version()) +
                                                  " (a package upgrade since eddyd started): restart eddyd"});
  auto config = parse_config(job->config, job->config_file);
  if (!config) return report_error(config.error());
  log::set_min_level(log::level_named(config->log_level));

  // The hub's TLS session: the one eddyd holds, resumed when the hub still takes it, and the
  // one this worker's handshakes leave, handed back to eddyd with the result.
  tls::SessionCache hub_sessions;
  if (job->hub_session) hub_sessions.put(*job->hub_session);
  auto options = updater_options(*config);
  if (options.hub) options.hub->tls_sessions = &hub_sessions;
  auto updater = ota::Updater::create(std::move(options), link);
  if (!updater) return report_error(updater.error());
  ota::Updater& u = **updater;
  u.set_activity_listener([&](const std::string& activity) { link.send({{"activity", activity}}); });
  UpdateForwarder forward(link);
  u.set_update_listener([&](const nlohmann::json& update) { forward(update); });
  stop_signal.attach(&u);
  struct Detach {
    ~Detach() { stop_signal.attach(nullptr); }
  } detach;

  if (auto st = u.recover(); !st) log::error("recovery: " + st.error().message);
  if (job->start_apps && !u.stop_requested()) {
    u.start_apps();
    link.send({{"apps_started", true}});
  }
  if (u.stop_requested())
    return report_error(Error{Errc::conflict, "eddyd is stopping; the " + job->kind + " was not done"});
  nlohmann::json reply;
  if (job->kind == "poll") {
    auto cycle = u.run_cycle();
    if (u.stop_requested())
      return report_error(Error{Errc::conflict,
                                "eddyd is stopping; the poll was interrupted (an update it began "
                                "is finished or rolled back at the next start)"});
    reply = {{"result", poll_result_json(cycle)}};
  } else {
    auto r = u.rollback(job->target);
    reply = r ? nlohmann::json{{"result", *r}} : nlohmann::json{{"error", error_json(r.error())}};
  }
  for (const auto& session : hub_sessions.all()) link.send({{"hub_tls_session", worker_protocol::session_json(session)}});
  return link.send(reply) ? 0 : 1;
}

}  // namespace eddy::daemon
