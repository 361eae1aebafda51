#include "fleet/api.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

#include "fleet/report_batch.hpp"
#include "platform/fault.hpp"
#include "platform/log.hpp"

namespace eddy::fleet {

namespace {

using json = nlohmann::json;
using http::ServerRequest;
using http::ServerResponse;

constexpr std::size_t max_field_size = 4096;
constexpr std::size_t max_events = 10000;

ServerResponse json_response(int status, const json& body) {
  return ServerResponse{status, {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}},
                        body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"};
}

ServerResponse error_response(int status, std::string message) {
  return json_response(status, json{{"error", std::move(message)}});
}

int status_for(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return 400;
    case Errc::not_found: return 404;
    case Errc::conflict: return 409;
    default: return 500;
  }
}

ServerResponse from_error(const Error& e) {
  const int status = status_for(e.code);
  if (status == 500) log::error("API: " + e.message);
  return error_response(status, e.message);
}

// Device ids as eddyd's configuration allows them; rollout names as the model does.
bool valid_id(std::string_view id, std::string_view extra) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
  });
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto end = text.find(sep, start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

// %XX and '+' of a query string value.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%') {
      unsigned value = 0;
      if (i + 2 >= text.size()) return std::nullopt;
      auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
      if (ec != std::errc() || end != text.data() + i + 3) return std::nullopt;
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// A query parameter's value: nullopt when absent; Errc::invalid_argument when badly encoded.
Expected<std::optional<std::string>> query_param(std::string_view query, std::string_view name) {
  for (const auto& pair : split(query, '&')) {
    auto eq = pair.find('=');
    if (std::string_view(pair).substr(0, eq) != name) continue;
    auto value = percent_decode(eq == std::string::npos ? "" : std::string_view(pair).substr(eq + 1));
    if (!value) return make_error(Errc::invalid_argument, "query parameter `" + std::string(name) + "` is not validly percent-encoded");
    return value;
  }
  return std::optional<std::string>{};
}

// Typed access to a request's JSON with messages that name the field.
class Fields {
 public:
  Fields(const json& object, std::string path) : object_(object), path_(std::move(path)) {}

  Expected<std::string> text(const char* key, bool required) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) {
      if (required) return make_error(Errc::invalid_argument, "missing field " + name(key) + " (a string)");
      return std::string();
    }
    if (!it->is_string()) return make_error(Errc::invalid_argument, name(key) + " must be a string");
    auto value = it->get<std::string>();
    if (value.size() > max_field_size)
      return make_error(Errc::invalid_argument,
                        name(key) + " is longer than " + std::to_string(max_field_size) + " bytes");
    return value;
  }

  std::string name(std::string_view key) const { return "`" + (path_.empty() ? "" : path_ + ".") + std::string(key) + "`"; }

 private:
  const json& object_;
  std::string path_;
};

Expected<json> parse_body(const ServerRequest& request) {
  auto body = json::parse(request.body, nullptr, false);
  if (body.is_discarded())
    return make_error(Errc::invalid_argument, "the request body is not valid JSON (send Content-Type: application/json)");
  if (!body.is_object()) return make_error(Errc::invalid_argument, "the request body must be a JSON object");
  return body;
}

Expected<std::map<std::string, std::string>> string_map(const json& body, const char* key) {
  std::map<std::string, std::string> out;
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_object()) return make_error(Errc::invalid_argument, "`" + std::string(key) + "` must be an object of strings");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string())
      return make_error(Errc::invalid_argument, "`" + std::string(key) + "." + k + "` must be a string");
    if (k.empty() || k.size() > 253 || v.get<std::string>().size() > 253)
      return make_error(Errc::invalid_argument, "`" + std::string(key) + "." + k + "`: names and values hold 1 to 253 characters");
    out[k] = v.get<std::string>();
  }
  return out;
}

Expected<DeviceRecord> parse_sync(const json& body, const std::string& id) {
  DeviceRecord device;
  device.id = id;
  auto labels = string_map(body, "labels");
  if (!labels) return std::unexpected(labels.error());
  device.labels = std::move(*labels);
  auto commit = Fields(body, "").text("commit", false);
  if (!commit) return std::unexpected(commit.error());
  device.commit = *commit;
  if (auto it = body.find("targets"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return make_error(Errc::invalid_argument, "`targets` must be an object (target name -> state)");
    for (const auto& [name, value] : it->items()) {
      if (!value.is_object()) return make_error(Errc::invalid_argument, "`targets." + name + "` must be an object");
      Fields f(value, "targets." + name);
      auto version = f.text("version", false);
      auto release = f.text("release", false);
      auto state = f.text("state", false);
      for (auto* e : {&version, &release, &state})
        if (!*e) return std::unexpected(e->error());
      device.targets[name] = TargetState{*version, *release, *state};
    }
  }
  return device;
}

json verdict_json(const Verdict& v) {
  return {{"at", v.at}, {"decision", v.decision}, {"value", v.value}, {"threshold", v.threshold}, {"message", v.message}};
}

json event_json(const Event& e, bool with_rollout) {
  json out = {{"at", e.at}, {"kind", e.kind}, {"message", e.message}, {"generation", e.generation}};
  if (with_rollout) out["rollout"] = e.rollout;
  if (e.value) out["value"] = *e.value;
  if (e.threshold) out["threshold"] = *e.threshold;
  return out;
}

json status_json(const RolloutStatus& s) {
  json events = json::array();
  for (const auto& e : s.events) events.push_back(event_json(e, false));
  const auto& r = s.record;
  json steps = json::array();
  for (double p : s.spec.steps) steps.push_back(percent_json(p));
  return {{"name", r.name},
          {"release", r.release},
          {"commit", r.commit},
          {"generation", r.generation},
          {"state", r.state},
          {"step", r.step},
          {"steps", steps},
          {"percent", percent_json(s.spec.steps[static_cast<std::size_t>(r.step)])},
          {"step_started_at", r.step_started_at},
          {"bake_seconds", s.spec.bake.count()},
          {"min_devices", s.spec.min_devices},
          {"max_failure_rate", s.spec.max_failure_rate},
          {"on_failure", s.spec.on_failure == ota::OnFailure::rollback ? "rollback" : "pause"},
          {"progress_deadline_seconds", s.spec.progress_deadline.count()},
          {"selected", s.selected},
          {"admitted", s.admitted},
          {"devices",
           {{"succeeded", s.devices.succeeded},
            {"failed", s.devices.failed},
            {"in_progress", s.devices.in_progress},
            {"no_data", s.devices.no_data},
            {"waiting", s.devices.waiting}}},
          {"last_verdict", verdict_json(r.last_verdict)},
          {"events", std::move(events)}};
}

json targets_json(const std::map<std::string, TargetState>& targets) {
  json out = json::object();
  for (const auto& [name, t] : targets) out[name] = {{"version", t.version}, {"release", t.release}, {"state", t.state}};
  return out;
}

std::optional<std::string> bearer_token(const ServerRequest& request) {
  auto it = request.headers.find("authorization");
  if (it == request.headers.end()) return std::nullopt;
  std::string_view value = it->second;
  if (value.size() < 7) return std::nullopt;
  std::string scheme(value.substr(0, 7));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  if (scheme != "bearer ") return std::nullopt;
  value.remove_prefix(7);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return std::string(value);
}

ServerResponse method_not_allowed(std::string_view allowed) {
  auto r = error_response(405, "this route answers " + std::string(allowed) + " only");
  r.headers["Allow"] = std::string(allowed);
  return r;
}

}  // namespace

HubApi::HubApi(EventLoop& loop, Director& director, TokenFile& device_tokens, TokenFile& operator_tokens)
    : loop_(loop), director_(director), device_tokens_(device_tokens), operator_tokens_(operator_tokens) {}

// Requests still waiting for their group commit are dropped unanswered (the server answers 500
// or has closed their connections): nothing of theirs was committed.
HubApi::~HubApi() { *alive_ = false; }

void HubApi::handle(ServerRequest request, Respond respond) {
  auto parts = split(request.path, '/');  // "" "v1" "devices" "{id}" "sync"
  const std::string& method = request.method;

  if (request.path == "/metrics") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return on_loop([this] { return metrics(); }, std::move(respond));
  }
  if (request.path == "/" || request.path == "/index.html") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return respond(ServerResponse{200,
                          {{"Content-Type", "text/html; charset=utf-8"},
                           {"Cache-Control", "no-store"},
                           {"Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"}},
                          std::string(web_page())});
  }
  if (parts.size() < 3 || parts[0] != "" || parts[1] != "v1")
    return respond(error_response(404, "no route " + request.path + " (see fleet/API.md)"));

  const auto token = bearer_token(request);
  if (!token || token->empty())
    return respond(error_response(401, "no `Authorization: Bearer <token>` header: send the device's or operator's token"));

  // Device routes: /v1/devices/{id}/sync|reports
  if (parts[2] == "devices" && parts.size() == 5) {
    const std::string& id = parts[3];
    const std::string& what = parts[4];
    if (what != "sync" && what != "reports") return respond(error_response(404, "no route " + request.path));
    if (method != "POST") return respond(method_not_allowed("POST"));
    if (!valid_id(id, "._:@-"))
      return respond(error_response(400, "device id `" + id + "` may hold only letters, digits and . _ : @ - (at most 128)"));
    auto owner = device_tokens_.name_of(*token);
    if (!owner) {
      if (operator_tokens_.name_of(*token))
        return respond(error_response(403, "an operator token cannot be used on a device route: use the device's own token"));
      return respond(error_response(401, "unknown or revoked token: the hub's devices.tokens file has no line with it"));
    }
    if (*owner != id)
      return respond(error_response(403, "this token is device " + *owner + "'s: a device may sync and report only for itself, not for " + id));
    if (what == "sync") return sync(request, id, std::move(respond));
    return reports(request, id, std::move(respond));
  }

  // Operator routes.
  auto operator_name = operator_tokens_.name_of(*token);
  if (!operator_name) {
    if (device_tokens_.name_of(*token))
      return respond(error_response(403, "a device token cannot be used on an operator route: use an operator token"));
    return respond(error_response(401, "unknown or revoked token: the hub's operators.tokens file has no line with it"));
  }
  on_loop(
      [this, request = std::move(request), parts = std::move(parts), name = std::move(*operator_name)] {
        return operator_route(request, parts, name);
      },
      std::move(respond));
}

void HubApi::on_loop(std::function<ServerResponse()> answer, Respond respond) {
  // Dropped unanswered when the API is gone: the server answers 500.
  loop_.post([this, alive = alive_, answer = std::move(answer), respond = std::move(respond)] {
    if (*alive) respond(answer());
  });
}

ServerResponse HubApi::operator_route(const ServerRequest& request, const std::vector<std::string>& parts,
                                      const std::string& operator_name) {
  const std::string& method = request.method;
  if (parts[2] == "rollouts") {
    if (parts.size() == 3) return method == "GET" ? rollouts() : method_not_allowed("GET");
    if (!valid_id(parts[3], "._-")) return error_response(404, "no rollout `" + parts[3] + "`");
    if (director_.commit().empty()) {
      // Not "no such rollout": the hub cannot know yet. A hub that just started says so, and
      // clients that wait (eddy rollout status --wait) wait.
      auto response = error_response(503, "the hub has not accepted a fleet commit yet: it fetches source.url every "
                                           "source.interval (its log says why a commit was refused)");
      response.headers["Retry-After"] = "1";
      return response;
    }
    if (parts.size() == 4) return method == "GET" ? rollout(parts[3]) : method_not_allowed("GET");
    if (parts.size() == 5) {
      if (method != "POST") return method_not_allowed("POST");
      return command(parts[3], parts[4], operator_name);
    }
  }
  if (parts.size() == 3 && parts[2] == "devices") return method == "GET" ? devices(request) : method_not_allowed("GET");
  if (parts.size() == 3 && parts[2] == "events") return method == "GET" ? events(request) : method_not_allowed("GET");
  return error_response(404, "no route " + request.path + " (see fleet/API.md)");
}

void HubApi::sync(const ServerRequest& request, const std::string& id, Respond respond) {
  auto body = parse_body(request);
  if (!body) return respond(from_error(body.error()));
  auto device = parse_sync(*body, id);
  if (!device) return respond(from_error(device.error()));
  enqueue(
      [this, device = std::move(*device)]() mutable -> Applied {
        auto gates = director_.sync(std::move(device));
        if (!gates) return {from_error(gates.error()), {}};
        json rollouts = json::object();
        for (const auto& g : *gates) {
          rollouts[g.rollout] = {{"release", g.release}, {"admitted", g.admitted}, {"rollback", g.rollback},
                                 {"generation", g.generation}, {"state", g.state},   {"step", g.step},
                                 {"percent", percent_json(g.percent)}, {"reason", g.reason}};
        }
        return {json_response(200, {{"commit", director_.commit()}, {"rollouts", std::move(rollouts)}}), {}};
      },
      std::move(respond));
}

void HubApi::reports(const ServerRequest& request, const std::string& id, Respond respond) {
  auto batch = parse_report_batch(request.body, max_reports_per_request);
  if (!batch) return respond(from_error(batch.error()));
  std::vector<Report> parsed = std::move(*batch);
  // What can be made before the hand-over is made here, on the server's thread, not on the
  // store's: each report's probes as stored, and the answer, which acknowledges every id of the
  // batch in order (duplicates too) once the batch is stored.
  json acknowledged = json::array();
  for (auto& report : parsed) {
    report.probes_json = probes_json(report.probes);
    acknowledged.push_back(report.id);
  }
  enqueue(
      [this, id, parsed = std::move(parsed),
       answer = json_response(200, {{"acknowledged", std::move(acknowledged)}})]() mutable -> Applied {
        auto outcome = director_.record_reports(id, parsed);
        if (!outcome) return {from_error(outcome.error()), {}};
        auto counted = [this, added = outcome->added, duplicates = outcome->duplicates,
                        verdict = outcome->verdict_changed] {
          reports_total_ += static_cast<std::uint64_t>(added);
          reports_duplicate_total_ += static_cast<std::uint64_t>(duplicates);
          if (verdict && on_verdict_) on_verdict_();
        };
        return {std::move(answer), std::move(counted)};
      },
      std::move(respond));
}

void HubApi::enqueue(std::function<Applied()> apply, Respond respond) {
  {
    std::lock_guard lock(group_mutex_);
    group_.push_back(Write{std::move(apply), std::move(respond)});
    if (group_.size() > 1) return;  // commit_group() is already posted
  }
  // One post (and wake-up of the loop) a group, not one a request: what arrives until the loop
  // takes the group joins it.
  loop_.post([this, alive = alive_] {
    if (*alive) commit_group();
  });
}

void HubApi::commit_group() {
  struct Group {
    std::vector<Write> writes;
    std::vector<Applied> applied;
  };
  auto group = std::make_shared<Group>();
  {
    std::lock_guard lock(group_mutex_);
    group->writes = std::move(group_);
    group_.clear();
  }
  group->applied.reserve(group->writes.size());
  auto refuse = [this, group](const Error& why) {
    director_.drop_caches();  // its writes may not be stored after all
    log::error("API: cannot store the writes of " + std::to_string(group->writes.size()) + " device requests: " +
               why.message);
    for (auto& write : group->writes)
      write.respond(error_response(503, "the hub could not store this request (" + why.message +
                                            "); nothing of it is acknowledged: send it again"));
  };
  // Each request's own store transaction nests as a savepoint in this one. The answers wait until
  // the commit is on disk; the loop serves the next requests meanwhile.
  auto st = director_.store().transaction_then_durable(
      [&]() -> Status {
        for (auto& write : group->writes) group->applied.push_back(write.apply());
        fault::point("hub:before-group-commit");
        return {};
      },
      [this, alive = alive_, group, refuse](Status durable) {
        if (!*alive) return;
        if (!durable) return refuse(durable.error());
        fault::point("hub:after-group-commit");
        for (auto& applied : group->applied)
          if (applied.on_commit) applied.on_commit();
        auto answer = [group] {
          for (std::size_t i = 0; i < group->writes.size(); ++i)
            group->writes[i].respond(std::move(group->applied[i].response));
        };
        // On the server's loop the answers go out, and the group's requests are freed, off the
        // store's thread.
        if (answer_loop_) answer_loop_->post(std::move(answer));
        else answer();
      });
  if (!st) refuse(st.error());
}

ServerResponse HubApi::rollouts() {
  auto all = director_.statuses();
  if (!all) return from_error(all.error());
  json out = json::array();
  for (const auto& s : *all) out.push_back(status_json(s));
  return json_response(200, {{"rollouts", std::move(out)}});
}

ServerResponse HubApi::rollout(const std::string& name) {
  auto s = director_.status(name);
  if (!s) return from_error(s.error());
  return json_response(200, status_json(*s));
}

ServerResponse HubApi::command(const std::string& name, const std::string& verb, const std::string& by) {
  static const std::map<std::string, Command> commands{{"pause", Command::pause},     {"resume", Command::resume},
                                                       {"promote", Command::promote}, {"abort", Command::abort},
                                                       {"retry", Command::retry}};
  auto it = commands.find(verb);
  if (it == commands.end())
    return error_response(404, "no command `" + verb + "` (pause, resume, promote, abort or retry)");
  auto s = director_.command(name, it->second, by);
  if (!s) return from_error(s.error());
  return json_response(200, status_json(*s));
}

ServerResponse HubApi::devices(const ServerRequest& request) {
  std::map<std::string, std::string> selector;
  auto text = query_param(request.query, "selector");
  if (!text) return from_error(text.error());
  if (*text) {
    for (const auto& term : split(**text, ',')) {
      if (term.empty()) continue;
      auto eq = term.find('=');
      if (eq == std::string::npos || eq == 0)
        return error_response(400, "selector term `" + term + "` is not label=value (write selector=site=berlin,hw=pi4)");
      selector[term.substr(0, eq)] = term.substr(eq + 1);
    }
  }
  auto all = director_.store().devices();
  if (!all) return from_error(all.error());
  json out = json::array();
  for (const auto& d : *all) {
    bool match = std::all_of(selector.begin(), selector.end(), [&](const auto& kv) {
      auto l = d.labels.find(kv.first);
      return l != d.labels.end() && l->second == kv.second;
    });
    if (!match) continue;
    out.push_back({{"id", d.id}, {"labels", d.labels}, {"last_seen", d.last_seen}, {"commit", d.commit},
                   {"targets", targets_json(d.targets)}});
  }
  return json_response(200, {{"devices", std::move(out)}});
}

ServerResponse HubApi::events(const ServerRequest& request) {
  std::int64_t since = 0;
  auto text = query_param(request.query, "since");
  if (!text) return from_error(text.error());
  if (*text && !(*text)->empty()) {
    const std::string& value = **text;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), since);
    if (ec != std::errc() || end != value.data() + value.size())
      return error_response(400, "since=" + value + " is not a unix time in seconds");
  }
  auto list = director_.store().events(since, nullptr, max_events);
  if (!list) return from_error(list.error());
  json out = json::array();
  for (const auto& e : *list) out.push_back(event_json(e, true));
  return json_response(200, {{"events", std::move(out)}});
}

ServerResponse HubApi::metrics() {
  std::ostringstream out;
  auto statuses = director_.statuses();
  if (!statuses) return ServerResponse{500, {{"Content-Type", "text/plain"}}, statuses.error().message + "\n"};
  auto gauge = [&](std::string_view name, std::string_view help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n";
  };
  gauge("eddy_hub_rollout_step", "The open step of each rollout (0 is the first).");
  for (const auto& s : *statuses) out << "eddy_hub_rollout_step{rollout=\"" << s.record.name << "\"} " << s.record.step << '\n';
  gauge("eddy_hub_rollout_percent", "The percent of selected devices the open step admits.");
  for (const auto& s : *statuses)
    out << "eddy_hub_rollout_percent{rollout=\"" << s.record.name << "\"} "
        << percent_text(s.spec.steps[static_cast<std::size_t>(s.record.step)]) << '\n';
  gauge("eddy_hub_rollout_devices", "Selected devices of each rollout by verdict (waiting: not admitted yet).");
  for (const auto& s : *statuses) {
    const std::pair<const char*, int> states[] = {{"succeeded", s.devices.succeeded}, {"failed", s.devices.failed},
                                                  {"in_progress", s.devices.in_progress}, {"no_data", s.devices.no_data},
                                                  {"waiting", s.devices.waiting}};
    for (auto [state, n] : states)
      out << "eddy_hub_rollout_devices{rollout=\"" << s.record.name << "\",state=\"" << state << "\"} " << n << '\n';
  }
  gauge("eddy_hub_rollout_halted", "1 when the rollout is halted or rolled back.");
  for (const auto& s : *statuses)
    out << "eddy_hub_rollout_halted{rollout=\"" << s.record.name << "\"} "
        << (s.record.state == "halted" || s.record.state == "rolled-back" ? 1 : 0) << '\n';
  out << "# HELP eddy_hub_reports_total Device reports stored since the hub started.\n"
         "# TYPE eddy_hub_reports_total counter\neddy_hub_reports_total "
      << reports_total_ << '\n';
  out << "# HELP eddy_hub_reports_duplicate_total Reports received again (acknowledged, counted once).\n"
         "# TYPE eddy_hub_reports_duplicate_total counter\neddy_hub_reports_duplicate_total "
      << reports_duplicate_total_ << '\n';
  auto known = director_.store().device_count();
  gauge("eddy_hub_devices_known", "Devices that have synced with the hub.");
  out << "eddy_hub_devices_known " << (known ? *known : 0) << '\n';
  gauge("eddy_hub_fleet_commit_timestamp_seconds", "Committer time of the fleet commit the hub accepted.");
  out << "eddy_hub_fleet_commit_timestamp_seconds " << director_.commit_time() << '\n';
  out << "# HELP eddy_hub_director_ticks_total Looks of the director at every rollout since the hub started.\n"
         "# TYPE eddy_hub_director_ticks_total counter\neddy_hub_director_ticks_total "
      << director_.tick_count() << '\n';
  gauge("eddy_hub_director_tick_seconds", "How long the director's latest tick took.");
  out << "eddy_hub_director_tick_seconds " << director_.last_tick_seconds() << '\n';
  return ServerResponse{200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}}, out.str()};
}

}  // namespace eddy::fleet
