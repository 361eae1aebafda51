// eddyd: the device agent. Parses arguments, loads the configuration and hands over to Agent,
// which runs each poll in the update worker eddyd-worker (daemon/worker/).
#include <malloc.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon/agent.hpp"
#include "daemon/config.hpp"
#include "daemon/control_server.hpp"
#include "daemon/update_worker.hpp"
#include "daemon/version.hpp"
#include "platform/event_loop.hpp"
#include "platform/fs.hpp"
#include "platform/log.hpp"
#include "platform/systemd.hpp"

int main(int argc, char** argv) {
  // One malloc arena for all of eddyd's threads (the loop, the job thread, a control request's
  // thread): glibc would give each thread that allocates an arena of its own, whose freed pages
  // stay resident (0.1 MiB after hub syncs over TLS; bench/RESULTS.md, issue 2). eddyd's threads
  // allocate little and seldom at the same time, so sharing the lock costs nothing measurable.
  // Before any thread starts.
  ::mallopt(M_ARENA_MAX, 1);
  CLI::App app{
      "eddyd: the Eddy device agent. Follows a signed fleet repository, installs the releases it "
      "assigns to this device, checks their health and rolls back on its own.\n\n"
      "Exit codes: 0 stopped cleanly (or configuration valid with --check-config); 1 a fatal error "
      "at start-up; 2 bad arguments or configuration."};
  std::string config_file = "/etc/eddy/eddyd.yaml";
  bool check_only = false;
  bool show_version = false;
  app.add_option("-c,--config", config_file, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check_only, "check the configuration and exit");
  app.add_flag("--version", show_version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (show_version) {
    std::cout << "eddyd " << eddy::daemon::version() << "\n";
    return 0;
  }

  // The text is kept: every update worker gets it, so that both read the same configuration
  // even when the file is edited while eddyd runs.
  auto config_text = eddy::fs::read_file(config_file, 4u << 20);
  if (!config_text) {
    eddy::log::error(config_text.error().with_context("read configuration").message);
    return 2;
  }
  auto config = eddy::daemon::parse_config(*config_text, config_file);
  if (!config) {
    eddy::log::error(config.error().message);
    return 2;
  }
  eddy::log::set_min_level(eddy::log::level_named(config->log_level));
  if (auto st = eddy::daemon::check_config(*config); !st) {
    eddy::log::error(st.error().message);
    return 2;
  }
  if (auto st = eddy::daemon::check_rootfs_slots(*config); !st) {
    if (check_only) {
      eddy::log::error(st.error().message);
      return 2;
    }
    eddy::log::warning(st.error().message + " (starting anyway: the slot is looked up again when an update writes it)");
  }
  auto worker = eddy::daemon::find_worker_executable();
  if (!worker) {
    eddy::log::error(worker.error().message);
    return 2;
  }
  if (check_only) {
    std::cout << "configuration " << config_file << " is valid\n";
    return 0;
  }

  ::signal(SIGPIPE, SIG_IGN);
  eddy::EventLoop loop;
  eddy::daemon::Agent agent(*config, eddy::daemon::WorkerSettings{*worker, config_file, *config_text}, loop);
  if (auto st = agent.start(); !st) {
    eddy::log::error("cannot start: " + st.error().message);
    return 1;
  }
  auto server = eddy::daemon::ControlServer::start(
      loop, eddy::daemon::ControlServerOptions{config->socket, config->socket_group}, agent);
  if (!server) {
    eddy::log::error("cannot open the control socket: " + server.error().message);
    agent.shutdown();
    return 1;
  }
  loop.every(std::chrono::milliseconds(200), [&] { agent.supervisor().tick(); });
  if (auto wd = eddy::systemd::watchdog_interval()) {
    // Pings come from the event loop, so a stuck loop stops them and systemd restarts eddyd.
    auto period = std::chrono::duration_cast<std::chrono::milliseconds>(*wd / 2);
    loop.every(std::max(period, std::chrono::milliseconds(100)), [] { (void)eddy::systemd::notify_watchdog(); });
  }
  (void)loop.on_signal({SIGTERM, SIGINT}, [&](int sig) {
    eddy::log::notice(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + "; stopping");
    (void)eddy::systemd::notify_stopping();
    loop.stop();
  });
  eddy::log::notice("eddyd " + std::string(eddy::daemon::version()) + " started: device " + config->device_id +
                    ", following " + config->source_url + " (" + config->source_branch + ")");
  (void)eddy::systemd::notify_ready();
  loop.run();
  agent.shutdown();
  server->reset();
  eddy::log::notice("eddyd stopped");
  return 0;
}
