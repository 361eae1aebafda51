#include "cli/daemon_commands.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/format.hpp"
#include "cli/release_commands.hpp"
#include "cli/rollout_commands.hpp"
#include "daemon/version.hpp"
#include "platform/duration.hpp"
#include "platform/error.hpp"
#include "platform/unix_socket_client.hpp"

namespace eddy::cli {

namespace {

using nlohmann::json;

constexpr const char* footer = R"(Socket:
  Commands talk to eddyd over its control socket: --socket PATH, else $EDDY_SOCKET, else
  /run/eddy/eddyd.sock (the `socket` key of /etc/eddy/eddyd.yaml). Root and members of the
  socket's group (socket_group, default `eddy`) may use it.

Exit codes:
  0  success
  1  the daemon reported a failure: check found a refused commit, or an update failed or was
     rolled back; a rollback was impossible; the daemon gave an error
  2  usage error: bad arguments, or a request the daemon refused as invalid
  3  the daemon cannot be reached: not running, wrong socket, no permission, no answer in time

Examples:
  eddy status                 what runs, what the daemon is doing, what it last saw
  eddy history -n 20          the last 20 transitions, probe results and events
  eddy check                  poll the fleet repository now and wait for any update
  eddy rollback sensor-app    go back to the previous version of sensor-app
  eddy status --json          the daemon's answer as JSON, for scripts
  eddy release delta --base OLD.img --image NEW.img --out DELTA.zst
                              make a delta for a release (no daemon needed)
  eddy rollout status --hub https://hub:8443 --token-file TOKEN
                              the fleet's rollouts on eddy-hub (see `eddy rollout --help`)
  eddy fleet devices --selector site=berlin
                              the devices the hub knows)";

struct Options {
  std::string socket;
  std::string timeout;
  bool json = false;
  int limit = 50;
  std::string target;
};

std::string dump(const json& value) { return value.dump(2, ' ', false, json::error_handler_t::replace); }

int unreachable(const Options& options, const Error& error) {
  std::cerr << "eddy: cannot reach eddyd at " << options.socket << ": " << error.message << "\n";
  if (error.code == Errc::timeout) {
    std::cerr << "eddy: the daemon is running but did not answer; see `systemctl status eddyd` and "
                 "`journalctl -u eddyd`, or give more time with --timeout\n";
  } else if (error.message.find("ermission denied") != std::string::npos) {
    std::cerr << "eddy: run as root, or as a member of the socket's group (socket_group in "
                 "/etc/eddy/eddyd.yaml, default `eddy`)\n";
  } else {
    std::cerr << "eddy: is eddyd running? Try `systemctl status eddyd`. Another socket: --socket PATH or "
                 "$EDDY_SOCKET.\n";
  }
  return exit_unreachable;
}

// Send one request and print its result; `format` makes the human form, `failed` tells
// whether a successful reply still reports a failure.
int request(const Options& options, const json& body, std::optional<std::chrono::milliseconds> timeout,
            std::string (*format)(const json&, std::int64_t), bool (*failed)(const json&)) {
  const std::string command = body.value("command", "");
  if (!options.timeout.empty()) {
    auto parsed = parse_duration(options.timeout);
    if (!parsed) {
      std::cerr << "eddy: --timeout: " << parsed.error().message << "\n";
      return exit_usage;
    }
    timeout = parsed->count() > 0 ? std::optional(*parsed) : std::nullopt;
  }
  auto reply_line = unix_socket_request(options.socket, body.dump(), timeout);
  if (!reply_line) return unreachable(options, reply_line.error());

  auto reply = json::parse(*reply_line, nullptr, false);
  if (reply.is_discarded() || !reply.is_object() || !reply.contains("ok")) {
    std::cerr << "eddy " << command << ": the daemon at " << options.socket
              << " sent a reply that is not the control protocol's JSON: " << reply_line->substr(0, 200) << "\n";
    return exit_failure;
  }
  if (!reply.value("ok", false)) {
    const json error = reply.contains("error") && reply["error"].is_object() ? reply["error"] : json::object();
    const std::string code = error.value("code", "internal");
    std::cerr << "eddy " << command << ": " << error.value("message", "the daemon reported an error") << " ("
              << code << ")\n";
    if (options.json) std::cout << dump(json{{"error", error}}) << "\n";
    return code == errc_name(Errc::invalid_argument) ? exit_usage : exit_failure;
  }
  const json result = reply.contains("result") ? reply["result"] : json(nullptr);
  if (options.json) {
    std::cout << dump(result) << "\n";
  } else {
    std::cout << format(result, static_cast<std::int64_t>(std::time(nullptr)));
  }
  std::cout.flush();
  return failed && failed(result) ? exit_failure : exit_ok;
}

}  // namespace

int run(int argc, char** argv) {
  Options options;
  const char* env_socket = std::getenv("EDDY_SOCKET");
  options.socket = env_socket && *env_socket ? env_socket : default_socket;

  CLI::App app{"eddy: control the Eddy update daemon (eddyd) on this device, and the fleet's rollouts on eddy-hub.", "eddy"};
  app.footer(footer);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(eddy::daemon::version()));
  app.add_option("--socket", options.socket,
                 "eddyd's control socket (default: $EDDY_SOCKET, else " + std::string(default_socket) + ")")
      ->type_name("PATH");
  app.add_option("--timeout", options.timeout,
                 "give up waiting for the daemon after this long, like 30s or 10m; 0 waits for ever "
                 "(default: 30s for status and history, no limit for check and rollback)")
      ->type_name("DURATION");

  auto* status = app.add_subcommand("status", "Show the device, the daemon's state and activity, the fleet source, "
                                              "each target's version and a running update's progress.");
  auto* history = app.add_subcommand("history", "Show recorded update transitions, probe results and events, "
                                                "oldest first, one a line with its local time.");
  auto* check = app.add_subcommand("check", "Poll the fleet repository now and wait until the poll and any update it "
                                            "starts finished (this may take minutes). Exits 1 if a commit was refused "
                                            "or an update failed or was rolled back.");
  auto* rollback = app.add_subcommand("rollback", "Go back to the previous version of an app and wait until done. "
                                                  "Exits 1 if there is nothing to roll back to.");
  for (auto* sub : {status, history, check, rollback})
    sub->add_flag("--json", options.json,
                  "print the daemon's result as JSON instead of text (a failure prints "
                  "{\"error\":{\"code\",\"message\"}})");
  history->add_option("-n,--limit", options.limit, "how many of the newest entries to show (default 50)")
      ->type_name("N")
      ->check(CLI::Range(1, 10000));
  ReleaseOptions release_options;
  auto* release_delta = add_release_commands(app, release_options);
  HubCommandOptions hub_options;
  const auto hub_commands = add_hub_commands(app, hub_options);
  rollback->add_option("TARGET", options.target, "the app to roll back (may be left out when there is only one)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? exit_ok : exit_usage;
  }

  using namespace std::chrono_literals;
  auto format_check_result = [](const json& j, std::int64_t) { return format_check(j); };
  auto format_rollback_result = [](const json& j, std::int64_t) { return format_rollback(j); };
  auto format_history_result = [](const json& j, std::int64_t) { return format_history(j); };

  if (release_delta->parsed()) return run_release_delta(release_options);
  if (auto code = run_hub_commands(hub_commands, hub_options)) return *code;
  if (status->parsed()) return request(options, {{"command", "status"}}, 30s, format_status, nullptr);
  if (history->parsed())
    return request(options, {{"command", "history"}, {"limit", options.limit}}, 30s, format_history_result, nullptr);
  if (check->parsed()) return request(options, {{"command", "check"}}, std::nullopt, format_check_result, check_failed);
  if (rollback->parsed()) {
    json body{{"command", "rollback"}};
    if (!options.target.empty()) body["target"] = options.target;
    return request(options, body, std::nullopt, format_rollback_result, nullptr);
  }
  std::cerr << app.help();
  return exit_usage;
}

}  // namespace eddy::cli
