// eddy-hub: the fleet controller. Parses arguments, loads the configuration and hands over to Hub.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "fleet/config.hpp"
#include "fleet/hub.hpp"
#include "platform/event_loop.hpp"
#include "platform/log.hpp"
#include "platform/systemd.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "eddy-hub: the Eddy fleet controller. Follows the signed fleet repository as devices do, collects "
      "device reports, and widens each rollout step by step while the fleet stays healthy, halting (and "
      "rolling back) when too many devices fail. Devices and operators use its HTTP API (fleet/API.md); "
      "GET / is the web view, GET /metrics Prometheus metrics.\n\n"
      "Once listening, it writes its base URL (http(s)://host:port) to <data_dir>/url, which helps with "
      "`listen: 127.0.0.1:0` (a port the OS picks).\n\n"
      "Exit codes: 0 stopped cleanly (or configuration valid with --check-config); 1 a fatal error at "
      "start-up; 2 bad arguments or configuration."};
  std::string config_file = "/etc/eddy/hub.yaml";
  bool check_only = false;
  bool show_version = false;
  app.add_option("-c,--config", config_file, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check_only, "check the configuration (and the files it names) and exit");
  app.add_flag("--version", show_version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (show_version) {
    std::cout << "eddy-hub " << EDDY_VERSION_STRING << "\n";
    return 0;
  }

  auto config = eddy::fleet::load_hub_config(config_file);
  if (!config) {
    eddy::log::error(config.error().message);
    return 2;
  }
  eddy::log::set_min_level(eddy::log::level_named(config->log_level));
  if (auto st = eddy::fleet::check_hub_config(*config); !st) {
    eddy::log::error(st.error().message);
    return 2;
  }
  if (check_only) {
    std::cout << "configuration " << config_file << " is valid\n";
    return 0;
  }

  ::signal(SIGPIPE, SIG_IGN);
  eddy::EventLoop loop;
  auto hub = eddy::fleet::Hub::start(loop, eddy::fleet::HubOptions{*config, {}, {}});
  if (!hub) {
    eddy::log::error("cannot start: " + hub.error().message);
    return 1;
  }
  if (auto wd = eddy::systemd::watchdog_interval()) {
    auto period = std::chrono::duration_cast<std::chrono::milliseconds>(*wd / 2);
    loop.every(std::max(period, std::chrono::milliseconds(100)), [] { (void)eddy::systemd::notify_watchdog(); });
  }
  (void)loop.on_signal({SIGTERM, SIGINT}, [&](int sig) {
    eddy::log::notice(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + "; stopping");
    (void)eddy::systemd::notify_stopping();
    loop.stop();
  });
  (void)eddy::systemd::notify_ready();
  (void)eddy::systemd::notify_status("listening on " + (*hub)->url());
  loop.run();
  hub->reset();
  eddy::log::notice("eddy-hub stopped");
  return 0;
}
