// A hub for device-side tests: the two device routes of fleet/API.md (sync, reports) served by
// the real platform HTTP(S) server on loopback, with gates the test sets, device tokens checked
// (401/403), reports stored once per id, and faults on demand: an error status, answers held
// back past the client's timeout (a lost acknowledgement), the server going away and coming
// back on the same port. Header-only so that any test folder can include it.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/event_loop.hpp"
#include "platform/http_server.hpp"

namespace eddy::testing {

class ScriptedHub {
 public:
  struct Tls {
    std::filesystem::path cert, key;
  };

  explicit ScriptedHub(Tls tls = {}) : tls_(std::move(tls)) { start(); }
  ~ScriptedHub() { stop(); }
  ScriptedHub(const ScriptedHub&) = delete;
  ScriptedHub& operator=(const ScriptedHub&) = delete;

  // Serve (again, on the same port after stop()).
  void start() {
    if (thread_.joinable()) return;
    loop_ = std::make_unique<EventLoop>();
    http::ServerOptions options;
    options.listen = "127.0.0.1:" + std::to_string(port_);
    options.tls_cert = tls_.cert;
    options.tls_key = tls_.key;
    auto server = http::Server::start(*loop_, options, [this](http::ServerRequest request, auto respond) {
      handle(std::move(request), std::move(respond));
    });
    if (!server) throw std::runtime_error("scripted hub: " + server.error().message);
    server_ = std::move(*server);
    port_ = server_->port();
    thread_ = std::thread([this] { loop_->run(); });
  }
  // Go away: the port refuses connections until start().
  void stop() {
    if (!thread_.joinable()) return;
    release_held();
    loop_->stop();
    thread_.join();
    server_.reset();
    loop_.reset();
  }

  std::string url() const { return std::string(tls_.cert.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  void set_token(const std::string& device, const std::string& token) {
    std::lock_guard lock(mutex_);
    tokens_[device] = token;
  }
  // The gate of `rollout` in every sync answer (fleet/API.md's entry).
  void set_gate(const std::string& rollout, const std::string& release, bool admitted, std::int64_t generation,
                bool rollback = false, const std::string& state = "progressing") {
    std::lock_guard lock(mutex_);
    gates_[rollout] = {{"release", release}, {"admitted", admitted}, {"rollback", rollback},
                       {"generation", generation}, {"state", state}, {"step", 0}, {"percent", 100},
                       {"reason", admitted ? "step 1 of 1 (100%) admits this device" : "not this device's turn"}};
  }
  void remove_gate(const std::string& rollout) {
    std::lock_guard lock(mutex_);
    gates_.erase(rollout);
  }
  // Answer every request with this status and an API error body (0: answer normally).
  void set_failing(int status) {
    std::lock_guard lock(mutex_);
    failing_ = status;
  }
  // Raw body for sync answers (overrides the gates; for malformed answers).
  void set_raw_sync_answer(std::string body) {
    std::lock_guard lock(mutex_);
    raw_sync_ = std::move(body);
  }
  // Store the reports of the next `n` posts but hold their answers back until release_held()
  // (or stop): the client times out, as when an acknowledgement is lost on the way.
  void hold_report_answers(int n) {
    std::lock_guard lock(mutex_);
    hold_ = n;
  }
  // Refuse (400) any report post that holds a report whose message contains `needle`.
  void refuse_reports_containing(std::string needle) {
    std::lock_guard lock(mutex_);
    refuse_needle_ = std::move(needle);
  }
  void release_held() {
    std::vector<std::pair<std::function<void(http::ServerResponse)>, nlohmann::json>> held;
    {
      std::lock_guard lock(mutex_);
      held.swap(held_);
    }
    for (auto& [respond, body] : held) respond(json_response(200, body));
  }

  // Reports stored, once per id, in arrival order.
  std::vector<nlohmann::json> reports() const {
    std::lock_guard lock(mutex_);
    return reports_;
  }
  int duplicates() const {
    std::lock_guard lock(mutex_);
    return duplicates_;
  }
  int report_posts() const { return report_posts_.load(); }
  int sync_count() const { return sync_count_.load(); }
  std::vector<nlohmann::json> syncs() const {
    std::lock_guard lock(mutex_);
    return syncs_;
  }
  std::vector<std::size_t> batch_sizes() const {
    std::lock_guard lock(mutex_);
    return batch_sizes_;
  }
  std::vector<std::string> authorizations() const {
    std::lock_guard lock(mutex_);
    return authorizations_;
  }

 private:
  static http::ServerResponse json_response(int status, const nlohmann::json& body) {
    http::ServerResponse r;
    r.status = status;
    r.headers["Content-Type"] = "application/json";
    r.body = body.dump();
    return r;
  }

  void handle(http::ServerRequest request, std::function<void(http::ServerResponse)> respond) {
    std::unique_lock lock(mutex_);
    const auto auth = request.headers.count("authorization") ? request.headers.at("authorization") : "";
    authorizations_.push_back(auth);
    if (failing_ != 0) return respond(json_response(failing_, {{"error", "scripted failure"}}));
    // /v1/devices/{id}/{route}
    const std::string prefix = "/v1/devices/";
    if (request.method != "POST" || !request.path.starts_with(prefix))
      return respond(json_response(404, {{"error", "no route " + request.path}}));
    auto rest = request.path.substr(prefix.size());
    auto slash = rest.rfind('/');
    if (slash == std::string::npos) return respond(json_response(404, {{"error", "no route"}}));
    const std::string device = rest.substr(0, slash), route = rest.substr(slash + 1);
    bool known = false;
    for (const auto& [id, token] : tokens_) {
      if ("Bearer " + token != auth) continue;
      known = true;
      if (id != device) return respond(json_response(403, {{"error", "token of " + id + " used for " + device}}));
    }
    if (!known) return respond(json_response(401, {{"error", "unknown token"}}));
    nlohmann::json body;
    try {
      body = nlohmann::json::parse(request.body);
    } catch (const nlohmann::json::exception&) {
      return respond(json_response(400, {{"error", "malformed JSON"}}));
    }
    if (route == "sync") {
      ++sync_count_;
      syncs_.push_back(body);
      if (!raw_sync_.empty()) {
        http::ServerResponse r;
        r.body = raw_sync_;
        return respond(r);
      }
      return respond(json_response(200, {{"commit", ""}, {"rollouts", gates_}}));
    }
    if (route != "reports") return respond(json_response(404, {{"error", "no route " + route}}));
    ++report_posts_;
    if (!body.contains("reports") || !body["reports"].is_array())
      return respond(json_response(400, {{"error", "no `reports` list"}}));
    if (!refuse_needle_.empty()) {
      for (const auto& r : body["reports"])
        if (r.value("message", "").find(refuse_needle_) != std::string::npos)
          return respond(json_response(400, {{"error", "report " + r.value("id", "") + " is malformed"}}));
    }
    batch_sizes_.push_back(body["reports"].size());
    nlohmann::json acknowledged = nlohmann::json::array();
    for (const auto& r : body["reports"]) {
      const std::string id = r.value("id", "");
      if (!id.starts_with(device + ":"))
        return respond(json_response(403, {{"error", "report id " + id + " is not of " + device}}));
      if (seen_.insert(id).second) reports_.push_back(r);
      else ++duplicates_;
      acknowledged.push_back(id);
    }
    if (hold_ > 0) {
      --hold_;
      held_.emplace_back(std::move(respond), nlohmann::json{{"acknowledged", acknowledged}});
      return;
    }
    lock.unlock();
    respond(json_response(200, {{"acknowledged", acknowledged}}));
  }

  Tls tls_;
  int port_ = 0;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<http::Server> server_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::map<std::string, std::string> tokens_;
  nlohmann::json gates_ = nlohmann::json::object();
  int failing_ = 0;
  std::string raw_sync_;
  std::string refuse_needle_;
  int hold_ = 0;
  std::vector<std::pair<std::function<void(http::ServerResponse)>, nlohmann::json>> held_;
  std::set<std::string> seen_;
  std::vector<nlohmann::json> reports_;
  int duplicates_ = 0;
  std::atomic<int> report_posts_{0};
  std::atomic<int> sync_count_{0};
  std::vector<nlohmann::json> syncs_;
  std::vector<std::size_t> batch_sizes_;
  std::vector<std::string> authorizations_;
};

}  // namespace eddy::testing
