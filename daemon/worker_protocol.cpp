#include "daemon/worker_protocol.hpp"

#include "platform/hex.hpp"

namespace eddy::daemon::worker_protocol {

namespace {

constexpr const char* kSessionKey = "hub_tls_session";

Error malformed(const std::string& what, const nlohmann::json& message) {
  nlohmann::json shown = message;
  if (shown.is_object() && shown.contains(kSessionKey)) shown[kSessionKey] = "(secret, not shown)";
  std::string text = to_line(shown);
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  return Error{Errc::invalid_argument, what + " in " + text};
}

}  // namespace

std::string to_line(const nlohmann::json& message) {
  return message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json job_json(const Job& job) {
  nlohmann::json out = {{"version", job.version},         {"job", job.kind},
                        {"target", job.target},           {"start_apps", job.start_apps},
                        {"config_file", job.config_file}, {"config", job.config},
                        {"eddyd_pid", job.eddyd_pid}};
  if (job.hub_session) out[kSessionKey] = session_json(*job.hub_session);
  return out;
}

nlohmann::json session_json(const tls::SavedSession& session) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(session.data.data());
  return {{"host", session.host},         {"port", session.port},
          {"ca_file", session.ca_file},   {"ca_stamp", session.ca_stamp},
          {"client_cert", session.client_cert}, {"data", to_hex(bytes, session.data.size())}};
}

Expected<tls::SavedSession> session_from_json(const nlohmann::json& session) {
  auto bad = [](const std::string& what) {
    return make_error(Errc::invalid_argument, "the hub TLS session from the other process: " + what);
  };
  if (!session.is_object()) return bad("not a JSON object");
  tls::SavedSession out;
  for (auto [key, field] : {std::pair{"host", &out.host}, std::pair{"ca_file", &out.ca_file},
                            std::pair{"ca_stamp", &out.ca_stamp}, std::pair{"client_cert", &out.client_cert}}) {
    auto it = session.find(key);
    if (it == session.end() || !it->is_string()) return bad(std::string("no \"") + key + "\" string");
    *field = it->get<std::string>();
  }
  auto port = session.find("port");
  if (port == session.end() || !port->is_number_unsigned() || port->get<std::uint64_t>() == 0 ||
      port->get<std::uint64_t>() > 65535)
    return bad("no \"port\" from 1 to 65535");
  out.port = port->get<std::uint16_t>();
  auto data = session.find("data");
  std::optional<std::string> bytes;
  if (data != session.end() && data->is_string()) bytes = from_hex(data->get_ref<const std::string&>());
  if (!bytes || bytes->empty()) return bad("no \"data\" in hexadecimal");
  out.data = std::move(*bytes);
  return out;
}

Expected<Job> job_from_json(const nlohmann::json& message) {
  if (!message.is_object()) return std::unexpected(malformed("the job is not a JSON object", message));
  auto text = [&](const char* key, std::string& out) -> Status {
    auto it = message.find(key);
    if (it == message.end() || !it->is_string())
      return std::unexpected(malformed(std::string("no \"") + key + "\" string", message));
    out = it->get<std::string>();
    return {};
  };
  Job job;
  std::string config_file;
  for (auto [key, out] :
       {std::pair{"version", &job.version}, std::pair{"job", &job.kind}, std::pair{"target", &job.target},
        std::pair{"config_file", &config_file}, std::pair{"config", &job.config}})
    if (auto st = text(key, *out); !st) return std::unexpected(st.error());
  job.config_file = config_file;
  if (job.kind != "poll" && job.kind != "rollback")
    return std::unexpected(malformed("unknown job \"" + job.kind + "\" (known: poll, rollback)", message));
  auto start_apps = message.find("start_apps");
  if (start_apps == message.end() || !start_apps->is_boolean())
    return std::unexpected(malformed("no \"start_apps\" true or false", message));
  job.start_apps = start_apps->get<bool>();
  auto pid = message.find("eddyd_pid");
  if (pid == message.end() || !pid->is_number_integer() || pid->get<std::int64_t>() <= 0)
    return std::unexpected(malformed("no \"eddyd_pid\" process id", message));
  job.eddyd_pid = pid->get<pid_t>();
  if (auto session = message.find(kSessionKey); session != message.end()) {
    auto parsed = session_from_json(*session);
    if (!parsed) return std::unexpected(parsed.error());
    job.hub_session = std::move(*parsed);
  }
  return job;
}

nlohmann::json error_json(const Error& error) {
  return {{"code", std::string(errc_name(error.code))}, {"message", error.message}};
}

Error error_from_json(const nlohmann::json& error) {
  if (error.is_object() && error.contains("code") && error["code"].is_string() && error.contains("message") &&
      error["message"].is_string()) {
    if (auto code = errc_from_name(error["code"].get<std::string>()))
      return Error{*code, error["message"].get<std::string>()};
  }
  return Error{Errc::internal, "the update worker sent a malformed error: " + to_line(error)};
}

Expected<PollResult> poll_result_from_json(const nlohmann::json& result) {
  if (!result.is_object()) return std::unexpected(malformed("the poll result is not a JSON object", result));
  PollResult out;
  for (const char* key : {"outcome", "commit", "message"}) {
    auto it = result.find(key);
    if (it == result.end() || !it->is_string())
      return std::unexpected(malformed(std::string("the poll result has no \"") + key + "\" string", result));
    out.reply[key] = *it;
  }
  auto failed = result.find("poll_failed");
  if (failed == result.end() || !failed->is_boolean())
    return std::unexpected(malformed("the poll result has no \"poll_failed\" true or false", result));
  out.poll_failed = failed->get<bool>();
  auto step = result.find("next_step_at");
  if (step != result.end() && !step->is_null()) {
    if (!step->is_number_integer())
      return std::unexpected(malformed("the poll result's \"next_step_at\" is not a time", result));
    out.next_step_at = step->get<std::int64_t>();
  }
  return out;
}

}  // namespace eddy::daemon::worker_protocol
