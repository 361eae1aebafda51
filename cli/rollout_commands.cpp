#include "cli/rollout_commands.hpp"

#include <algorithm>
#include <ctime>
#include <iostream>
#include <thread>
#include <variant>

#include "cli/daemon_commands.hpp"
#include "cli/format.hpp"
#include "cli/rollout_format.hpp"
#include "platform/duration.hpp"

namespace eddy::cli {

namespace {

using nlohmann::json;

constexpr const char* hub_footer = R"(The hub:
  --hub URL, else $EDDY_HUB, else `hub.url` of ~/.config/eddy/cli.yaml ($XDG_CONFIG_HOME/eddy/cli.yaml):
    hub:
      url: https://hub.example.com:8443
      token_file: ~/.config/eddy/operator-token   # relative paths: from the file's folder
      ca_file: hub-ca.pem                         # optional: the hub's private CA (PEM)
  The operator token (a token of the hub's operators.tokens): --token-file FILE, else
  $EDDY_TOKEN_FILE, else $EDDY_TOKEN (the token itself), else hub.token_file.
  --ca-file FILE (else $EDDY_CA_FILE, else hub.ca_file): the CA of a hub with a private
  certificate; the system's CAs otherwise.

Exit codes:
  0  success (rollout status: no shown rollout is halted or rolled back)
  1  the hub refused the request or failed, for instance an unknown rollout (404), a token it
     does not know (401), or a command the rollout's state does not allow (409); its error is shown
  2  usage error: bad arguments, no hub or token given, or a request the hub found malformed (400)
  3  the hub cannot be reached: not running, wrong URL, TLS refused, no answer within --timeout
  4  rollout status: a shown rollout is halted or rolled back (with --wait: it ended that way)

--json prints the hub's JSON as it is (fleet/API.md), stable for scripts; a failure prints
{"error": "...", "status": <HTTP status, 0 when the hub could not be reached>}.

Examples:
  eddy rollout status                       every rollout: state, step, devices, verdict, events
  eddy rollout status sensor-app --wait     follow until complete (exit 0) or halted (exit 4)
  eddy rollout pause sensor-app             stop widening; devices already admitted keep the release
  eddy rollout promote sensor-app           widen to the last step now
  eddy rollout retry sensor-app             start a halted rollout again at its first step
  eddy fleet devices --selector site=berlin,hw=pi4)";

std::string dump(const json& value) { return value.dump(2, ' ', false, json::error_handler_t::replace); }

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// One command's conversation with the hub: the request, and its errors shown with what to do.
class HubCall {
 public:
  HubCall(std::string command, const HubSettings& settings, bool json_output)
      : command_(std::move(command)), settings_(settings), json_(json_output) {}

  // The reply's JSON, or the exit code after the failure was shown.
  std::variant<json, int> operator()(std::string_view method, const std::string& path) const {
    auto reply = request(method, path);
    if (!reply) return unreachable(reply.error());
    if (reply->ok()) return reply->body;
    return refused(*reply);
  }

  Expected<HubReply> request(std::string_view method, const std::string& path) const {
    return hub_request(settings_, method, path);
  }

  // What failed and what to do about it.
  std::string unreachable_message(const Error& error) const {
    std::string hint = "is eddy-hub running and listening there? Another hub: --hub URL or $EDDY_HUB";
    if (certificate_refused(error))
      hint = "a hub with a certificate of a private CA needs --ca-file (or $EDDY_CA_FILE, hub.ca_file)";
    else if (error.code == Errc::timeout)
      hint = "the hub did not answer in time: check it (`systemctl status eddy-hub`), or give more time with --timeout";
    return "cannot reach the hub at " + settings_.url + ": " + error.message + "; " + hint;
  }

  int unreachable(const Error& error) const {
    return fail(
        0, unreachable_message(error),
        error.code == Errc::invalid_argument || error.code == Errc::unsupported ? exit_usage : exit_unreachable);
  }

  // A hub that may answer again soon (restarting, a network hiccup), unlike a bad URL or a
  // certificate this side does not trust.
  static bool transient(const Error& error) {
    return (error.code == Errc::network || error.code == Errc::timeout) && !certificate_refused(error);
  }

  int refused(const HubReply& reply) const {
    std::string message =
        "the hub at " + settings_.url + " answered " + std::to_string(reply.status) + ": " + reply.error_message();
    if (reply.status == 401)
      message += "; the token (from " + settings_.token_source +
                 ") must be the token of a line of the hub's operators.tokens (`<name> <token>`)";
    else if (reply.status == 403)
      message += "; operator commands need an operator token, not a device token (from " + settings_.token_source + ")";
    else if (reply.status == 404 && command_.starts_with("rollout"))
      message += "; `eddy rollout status` lists the rollouts the hub knows";
    return fail(reply.status, message, reply.status == 400 ? exit_usage : exit_failure);
  }

  const std::string& command() const { return command_; }
  const std::string& url() const { return settings_.url; }

 private:
  static bool certificate_refused(const Error& error) { return error.message.find("certificate") != std::string::npos; }

  int fail(int status, const std::string& message, int code) const {
    std::cerr << "eddy " << command_ << ": " << message << "\n";
    if (json_) std::cout << dump(json{{"error", message}, {"status", status}}) << "\n";
    std::cout.flush();
    return code;
  }

  std::string command_;
  const HubSettings& settings_;
  bool json_;
};

bool any_failed(const json& reply, bool list) {
  if (!list) return rollout_failed(reply);
  const auto& rollouts = field(reply, "rollouts");
  return rollouts.is_array() && std::any_of(rollouts.begin(), rollouts.end(), rollout_failed);
}

bool all_settled(const json& reply, bool list) {
  if (!list) return rollout_settled(reply);
  const auto& rollouts = field(reply, "rollouts");
  return !rollouts.is_array() || std::all_of(rollouts.begin(), rollouts.end(), rollout_settled);
}

int rollout_status(const HubCall& call, const HubCommandOptions& options) {
  const bool list = options.name.empty();
  const std::string path = list ? "/v1/rollouts" : "/v1/rollouts/" + encode_path_segment(options.name);
  std::chrono::milliseconds interval{2000};
  if (options.wait) {
    auto parsed = parse_duration(options.interval);
    if (!parsed || parsed->count() <= 0) {
      std::cerr << "eddy " << call.command() << ": --interval "
                << (parsed ? std::string("must be longer than 0s") : parsed.error().message) << "\n";
      return exit_usage;
    }
    interval = *parsed;
  }
  std::string last_progress;
  bool was_unreachable = false;
  for (;;) {
    auto reply = call.request("GET", path);
    if (!reply) {
      // While waiting, a hub that is away for a while (a restart) is waited out, said once.
      if (!options.wait || !HubCall::transient(reply.error())) return call.unreachable(reply.error());
      if (!was_unreachable)
        std::cerr << "eddy " << call.command() << ": " << call.unreachable_message(reply.error())
                  << "; waiting for it to answer again\n";
      was_unreachable = true;
      std::this_thread::sleep_for(interval);
      continue;
    }
    if (!reply->ok()) {
      // 503: a hub that has just started and accepted no fleet commit yet; waited out too.
      if (!options.wait || reply->status != 503) return call.refused(*reply);
      if (!was_unreachable)
        std::cerr << "eddy " << call.command() << ": the hub at " << call.url()
                  << " is not ready yet (503); waiting for it to answer again\n";
      was_unreachable = true;
      std::this_thread::sleep_for(interval);
      continue;
    }
    if (was_unreachable) std::cerr << "eddy " << call.command() << ": the hub at " << call.url() << " answers again\n";
    was_unreachable = false;
    const auto& body = reply->body;
    if (options.wait && !all_settled(body, list)) {
      if (!options.json) {
        // One line a change, so that a log of the wait reads as the rollout's story.
        std::string progress;
        if (list) {
          for (const auto& rollout : field(body, "rollouts")) progress += rollout_summary(rollout) + "\n";
        } else {
          progress = rollout_summary(body) + "\n";
        }
        if (progress != last_progress) std::cout << local_time(now()) << "  " << progress << std::flush;
        last_progress = progress;
      }
      std::this_thread::sleep_for(interval);
      continue;
    }
    if (options.json)
      std::cout << dump(body) << "\n";
    else
      std::cout << (list ? format_rollouts(body, now()) : format_rollout(body, now()));
    std::cout.flush();
    return any_failed(body, list) ? exit_rollout_failed : exit_ok;
  }
}

int rollout_command(const HubCall& call, const HubCommandOptions& options, const std::string& verb, const char* done) {
  auto reply = call("POST", "/v1/rollouts/" + encode_path_segment(options.name) + "/" + verb);
  if (auto* code = std::get_if<int>(&reply)) return *code;
  const auto& body = std::get<json>(reply);
  if (options.json) {
    std::cout << dump(body) << "\n";
  } else {
    std::cout << done << " " << options.name << "\n" << format_rollout(body, now(), 3);
  }
  std::cout.flush();
  return exit_ok;
}

int fleet_devices(const HubCall& call, const HubCommandOptions& options) {
  std::string path = "/v1/devices";
  if (!options.selector.empty()) path += "?selector=" + encode_query_value(options.selector);
  auto reply = call("GET", path);
  if (auto* code = std::get_if<int>(&reply)) return *code;
  const auto& body = std::get<json>(reply);
  if (options.json)
    std::cout << dump(body) << "\n";
  else
    std::cout << format_devices(body, now());
  std::cout.flush();
  return exit_ok;
}

void add_hub_options(CLI::App& group, HubCommandOptions& options) {
  group.footer(hub_footer);
  group
      .add_option("--hub", options.hub.url,
                  "eddy-hub's URL, like https://hub.example.com:8443 (default: $EDDY_HUB, "
                  "else hub.url of ~/.config/eddy/cli.yaml)")
      ->type_name("URL");
  group
      .add_option("--token-file", options.hub.token_file,
                  "a file holding the operator token (default: $EDDY_TOKEN_FILE, else the token in $EDDY_TOKEN, "
                  "else hub.token_file of cli.yaml)")
      ->type_name("FILE");
  group
      .add_option("--ca-file", options.hub.ca_file,
                  "the CA certificate (PEM) of a hub with a private certificate (default: $EDDY_CA_FILE, else "
                  "hub.ca_file of cli.yaml, else the system's CAs)")
      ->type_name("FILE");
  group.add_option("--timeout", options.hub.timeout, "give up on a request to the hub after this long (default 10s)")
      ->type_name("DURATION");
  group.add_flag("--json", options.json, "print the hub's JSON as it is, for scripts");
}

}  // namespace

HubCommands add_hub_commands(CLI::App& app, HubCommandOptions& options) {
  HubCommands commands;
  auto* rollout = app.add_subcommand("rollout",
                                     "Show and steer the fleet's progressive rollouts on eddy-hub "
                                     "(with an operator token; see `eddy rollout --help`).");
  rollout->require_subcommand(1);
  add_hub_options(*rollout, options);
  commands.rollout_status = rollout->add_subcommand(
      "status",
      "Show every rollout, or the one named: state, release, the steps with the current one marked, a bar "
      "of the selected devices by state, the last verdict with its value and threshold, recent events. "
      "Exits 4 when a shown rollout is halted or rolled back.");
  commands.rollout_status->add_option("NAME", options.name, "the rollout (its rollouts/NAME.yaml); all when left out");
  commands.rollout_status->add_flag("--wait", options.wait,
                                    "poll until the rollout (or every rollout) is complete (exit 0), halted or "
                                    "rolled back (exit 4), printing a line at each change; waits out a hub restart");
  commands.rollout_status->add_option("--interval", options.interval, "how often --wait asks the hub (default 2s)")
      ->type_name("DURATION");
  struct Verb {
    CLI::App** slot;
    const char* name;
    const char* help;
  };
  for (const auto& verb : std::initializer_list<Verb>{
           {&commands.rollout_pause, "pause",
            "Stop widening: no more devices are admitted until `resume` (those admitted keep the release)."},
           {&commands.rollout_resume, "resume", "Go on with a paused rollout from its current step."},
           {&commands.rollout_promote, "promote", "Widen to the last step now, skipping the bake and analysis."},
           {&commands.rollout_abort, "abort",
            "Halt the rollout and tell the admitted devices to roll back to their previous version."},
           {&commands.rollout_retry, "retry",
            "Start a halted or rolled-back rollout again at its first step (a new generation: devices that "
            "rolled back take the release again when admitted)."}}) {
    *verb.slot = rollout->add_subcommand(verb.name, verb.help);
    (*verb.slot)->add_option("NAME", options.name, "the rollout (its rollouts/NAME.yaml)")->required();
  }
  // The hub options on the group and on each verb: `eddy rollout --hub X status` and
  // `eddy rollout status --hub X` both work, and `eddy rollout status --help` lists them.
  for (auto* sub : {commands.rollout_status, commands.rollout_pause, commands.rollout_resume, commands.rollout_promote,
                    commands.rollout_abort, commands.rollout_retry})
    add_hub_options(*sub, options);

  auto* fleet = app.add_subcommand("fleet", "The devices eddy-hub knows (with an operator token).");
  fleet->require_subcommand(1);
  add_hub_options(*fleet, options);
  commands.fleet_devices = fleet->add_subcommand(
      "devices",
      "List the devices that have synced with the hub: id, when last seen, fleet commit, labels, and what "
      "each target runs.");
  commands.fleet_devices
      ->add_option("--selector", options.selector, "only devices with these labels, like site=berlin,hw=pi4")
      ->type_name("K=V,...");
  add_hub_options(*commands.fleet_devices, options);
  return commands;
}

std::optional<int> run_hub_commands(const HubCommands& commands, const HubCommandOptions& options) {
  struct Parsed {
    CLI::App* sub;
    const char* verb;
    const char* done;
  };
  const Parsed all[] = {
      {commands.rollout_status, "status", ""},        {commands.rollout_pause, "pause", "paused"},
      {commands.rollout_resume, "resume", "resumed"}, {commands.rollout_promote, "promote", "promoted"},
      {commands.rollout_abort, "abort", "aborted"},   {commands.rollout_retry, "retry", "retrying"},
      {commands.fleet_devices, "devices", ""}};
  for (const auto& p : all) {
    if (!p.sub || !p.sub->parsed()) continue;
    const std::string command = (p.sub == commands.fleet_devices ? "fleet " : "rollout ") + std::string(p.verb);
    if (auto ok = check_selector(options.selector); !ok) {
      std::cerr << "eddy " << command << ": --selector: " << ok.error().message << "\n";
      return exit_usage;
    }
    const auto env = process_environment();
    auto settings = resolve_hub_settings(options.hub, env, default_cli_config(env));
    if (!settings) {
      std::cerr << "eddy " << command << ": " << settings.error().message << "\n";
      return exit_usage;
    }
    HubCall call(command, *settings, options.json);
    if (p.sub == commands.rollout_status) return rollout_status(call, options);
    if (p.sub == commands.fleet_devices) return fleet_devices(call, options);
    return rollout_command(call, options, p.verb, p.done);
  }
  return std::nullopt;
}

}  // namespace eddy::cli
