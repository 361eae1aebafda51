#include "ota/hub_client.hpp"

#include <algorithm>
#include <cctype>

#include "ota/hub_status.hpp"
#include "platform/http_client.hpp"

namespace eddy::ota {

namespace {

constexpr std::size_t kMaxAnswer = 4 << 20;


// The `error` of the hub's JSON error body, or the start of whatever it sent.
std::string error_text(const http::Response& response) {
  try {
    auto body = nlohmann::json::parse(response.body);
    if (body.is_object() && body.contains("error") && body["error"].is_string()) return body["error"].get<std::string>();
  } catch (const nlohmann::json::exception&) {
  }
  std::string text = response.body.substr(0, 200);
  std::replace_if(text.begin(), text.end(), [](char c) { return std::iscntrl(static_cast<unsigned char>(c)) != 0; }, ' ');
  return text.empty() ? "no explanation" : text;
}

// Typed access to a field of the hub's JSON with messages that name it.
class Fields {
 public:
  Fields(const nlohmann::json& object, std::string where) : object_(object), where_(std::move(where)) {}

  Expected<std::string> text(const char* key, bool required = true) const {
    if (!object_.contains(key)) return required ? missing(key) : Expected<std::string>(std::string());
    const auto& v = object_.at(key);
    if (!v.is_string()) return wrong(key, "a string");
    return v.get<std::string>();
  }
  Expected<bool> boolean(const char* key) const {
    if (!object_.contains(key)) return missing(key);
    const auto& v = object_.at(key);
    if (!v.is_boolean()) return wrong(key, "true or false");
    return v.get<bool>();
  }
  Expected<std::int64_t> integer(const char* key, bool required) const {
    if (!object_.contains(key)) return required ? missing(key) : Expected<std::int64_t>(0);
    const auto& v = object_.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0) return wrong(key, "a whole number >= 0");
    return v.get<std::int64_t>();
  }
  Expected<double> number(const char* key) const {
    if (!object_.contains(key)) return 0.0;
    const auto& v = object_.at(key);
    if (!v.is_number()) return wrong(key, "a number");
    return v.get<double>();
  }

 private:
  std::unexpected<Error> missing(const char* key) const {
    return make_error(Errc::invalid_argument, where_ + " has no `" + key + "`");
  }
  std::unexpected<Error> wrong(const char* key, const char* what) const {
    return make_error(Errc::invalid_argument, where_ + ": `" + key + "` must be " + what + ", got " +
                                                  object_.at(key).dump().substr(0, 80));
  }
  const nlohmann::json& object_;
  std::string where_;
};

}  // namespace

Expected<SyncResponse> parse_sync_response(const nlohmann::json& body) {
  if (!body.is_object()) return make_error(Errc::invalid_argument, "the sync answer is not a JSON object");
  SyncResponse out;
  out.raw = body;
  Fields top(body, "the sync answer");
  auto commit = top.text("commit", false);
  if (!commit) return std::unexpected(commit.error());
  out.commit = *commit;
  if (!body.contains("rollouts")) return make_error(Errc::invalid_argument, "the sync answer has no `rollouts`");
  const auto& rollouts = body["rollouts"];
  if (!rollouts.is_object())
    return make_error(Errc::invalid_argument, "the sync answer: `rollouts` must be an object of rollouts by name");
  for (const auto& [name, entry] : rollouts.items()) {
    const std::string where = "the sync answer: rollouts." + name;
    if (!entry.is_object()) return make_error(Errc::invalid_argument, where + " must be an object");
    Fields f(entry, where);
    HubGate gate;
    auto release = f.text("release");
    if (!release) return std::unexpected(release.error());
    auto admitted = f.boolean("admitted");
    if (!admitted) return std::unexpected(admitted.error());
    auto rollback = f.boolean("rollback");
    if (!rollback) return std::unexpected(rollback.error());
    auto generation = f.integer("generation", true);
    if (!generation) return std::unexpected(generation.error());
    auto state = f.text("state", false);
    if (!state) return std::unexpected(state.error());
    auto step = f.integer("step", false);
    if (!step) return std::unexpected(step.error());
    auto percent = f.number("percent");
    if (!percent) return std::unexpected(percent.error());
    auto reason = f.text("reason", false);
    if (!reason) return std::unexpected(reason.error());
    gate.release = *release;
    gate.admitted = *admitted;
    gate.rollback = *rollback;
    gate.generation = *generation;
    gate.state = *state;
    gate.step = *step;
    gate.percent = *percent;
    gate.reason = *reason;
    out.rollouts.emplace(name, std::move(gate));
  }
  return out;
}

SyncRequest sync_request_from_store(storage::StateStore& store, const std::map<std::string, std::string>& labels,
                                    const std::vector<std::string>& targets, const std::string& commit) {
  SyncRequest request;
  request.labels = labels;
  request.commit = commit;
  for (const auto& name : targets) {
    TargetReport t;
    if (auto inst = store.installed(name); inst && *inst) {
      t.version = (*inst)->current_version;
      t.release = (*inst)->current_release;
    }
    if (auto latest = store.latest_update(name); latest && *latest) t.state = (*latest)->state;
    request.targets.emplace(name, std::move(t));
  }
  return request;
}

void record_sync_answer(storage::StateStore& store, const SyncResponse& answer) {
  (void)store.put(kHubLastSyncAt, std::to_string(storage::unix_now()));
  (void)store.put(kHubLastSyncResult, "ok");
  (void)store.put(kHubLastSync, answer.raw.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  (void)store.put(kHubReachable, "yes");
}

bool same_answer(const SyncResponse& a, const SyncResponse& b) {
  // The raw answers' rollouts hold every field parse_sync_response read, and nothing the device
  // could act on differently is left out (an unknown extra field only makes them differ).
  const auto rollouts = [](const SyncResponse& r) { return r.raw.is_object() ? r.raw.value("rollouts", nlohmann::json()) : nlohmann::json(); };
  return a.commit == b.commit && rollouts(a) == rollouts(b);
}

Expected<HubClient> HubClient::create(HubOptions options, std::string device_id) {
  while (options.url.ends_with('/')) options.url.pop_back();
  if (auto url = http::parse_url(options.url); !url)
    return std::unexpected(url.error().with_context("hub.url"));
  return HubClient(std::move(options), std::move(device_id));
}

Expected<nlohmann::json> HubClient::post(const std::string& route, const nlohmann::json& body) const {
  const std::string url = options_.url + "/v1/devices/" + device_id_ + "/" + route;
  auto fail = [&](Errc code, const std::string& message) { return make_error(code, "hub " + url + ": " + message); };
  auto token = read_token(options_.token_file);
  if (!token) return std::unexpected(token.error().with_context("hub " + url + ": hub.token_file"));

  http::RequestOptions request;
  request.method = "POST";
  request.headers = {{"Authorization", "Bearer " + *token}, {"Content-Type", "application/json"}};
  request.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  request.timeout = options_.timeout;
  request.max_body = kMaxAnswer;
  if (!options_.ca_file.empty()) request.ca_file = options_.ca_file;
  request.tls_sessions = options_.tls_sessions;
  request.tls_resume_only = options_.tls_resume_only;
  auto response = http::request(url, request);
  if (!response) return std::unexpected(response.error().with_context("hub " + url));

  const int status = response->status;
  if (status == 401)
    return fail(Errc::unauthorized, "the hub does not accept this device's token (401: " + error_text(*response) +
                                        "); put the token the hub lists for `" + device_id_ + "` into " +
                                        options_.token_file.string());
  if (status == 403)
    return fail(Errc::unauthorized, "the hub refused the token for device `" + device_id_ + "` (403: " +
                                        error_text(*response) + "); the token in " + options_.token_file.string() +
                                        " belongs to another device");
  if (status == 404)
    return fail(Errc::not_found, "no such route (404: " + error_text(*response) +
                                     "); check that hub.url is the address of an eddy-hub");
  if (status >= 500)
    return fail(Errc::network, "the hub failed (" + std::to_string(status) + ": " + error_text(*response) +
                                   "); retried at the next poll");
  if (status < 200 || status >= 300)
    return fail(Errc::invalid_argument,
                "the hub refused the request (" + std::to_string(status) + ": " + error_text(*response) + ")");
  try {
    return nlohmann::json::parse(response->body);
  } catch (const nlohmann::json::exception& e) {
    return fail(Errc::network, "the answer is not JSON (" + std::string(e.what()) + ")");
  }
}

Expected<SyncResponse> HubClient::sync(const SyncRequest& request) const {
  nlohmann::json targets = nlohmann::json::object();
  for (const auto& [name, t] : request.targets)
    targets[name] = {{"version", t.version}, {"release", t.release}, {"state", t.state}};
  nlohmann::json body = {{"labels", request.labels}, {"commit", request.commit}, {"targets", targets}};
  auto answer = post("sync", body);
  if (!answer) return std::unexpected(answer.error());
  auto parsed = parse_sync_response(*answer);
  // A request the hub took but an answer not in the API's format: the hub's problem (or a
  // version mismatch), retried like a failure of the hub.
  if (!parsed) return make_error(Errc::network, "hub " + options_.url + ": " + parsed.error().message);
  return parsed;
}

Expected<std::vector<std::string>> HubClient::post_reports(const nlohmann::json& reports) const {
  auto answer = post("reports", nlohmann::json{{"reports", reports}});
  if (!answer) return std::unexpected(answer.error());
  const std::string where = "hub " + options_.url + ": the reports answer";
  if (!answer->is_object() || !answer->contains("acknowledged") || !(*answer)["acknowledged"].is_array())
    return make_error(Errc::network, where + " has no `acknowledged` list");
  std::vector<std::string> ids;
  for (const auto& id : (*answer)["acknowledged"]) {
    if (!id.is_string()) return make_error(Errc::network, where + ": `acknowledged` must hold report ids");
    ids.push_back(id.get<std::string>());
  }
  return ids;
}

}  // namespace eddy::ota
