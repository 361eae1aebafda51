// The device's side of eddy-hub's HTTP API (fleet/API.md, "Devices"): the sync that registers
// the device and returns the hub's gate for each rollout, and the post of outbox reports. Over
// platform/http_client (HTTPS with the hub's CA), authenticated with the device's token read
// from hub.token_file at every request (a rotated token is picked up without a restart).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ota/hub_token.hpp"
#include "platform/error.hpp"
#include "storage/state_store.hpp"

namespace eddy::tls {
class SessionCache;  // platform/tls.hpp
}

namespace eddy::ota {

struct HubOptions {
  std::string url;                      // https://hub.example.com:8443 (a path prefix is kept)
  std::filesystem::path token_file;     // this device's token, surrounding white space ignored
  std::filesystem::path ca_file;        // empty: the system's CA certificates
  std::chrono::milliseconds timeout{10000};  // of each exchange
  std::int64_t outbox_limit = 10000;    // reports kept while the hub is away
  // https: TLS sessions to resume and keep (tls::ClientOptions::sessions; it must outlive the
  // client), and whether only a resumed (abbreviated) handshake may run: eddyd's own sync.
  tls::SessionCache* tls_sessions = nullptr;
  bool tls_resume_only = false;
};

// What the device runs, per target, as the sync request tells it.
struct TargetReport {
  std::string version, release;  // empty when nothing is installed
  std::string state;             // state of the latest attempt ("committed", "rolled-back", ...)
};

struct SyncRequest {
  std::map<std::string, std::string> labels;
  std::string commit;  // the fleet commit the device accepted ("" before the first)
  std::map<std::string, TargetReport> targets;
};

// The hub's word on one rollout that selects the device.
struct HubGate {
  std::string release;
  bool admitted = false;
  bool rollback = false;
  std::int64_t generation = 0;
  std::string state;   // progressing | paused | halted | rolled-back | complete
  std::int64_t step = 0;
  double percent = 0;
  std::string reason;  // plain words from the hub
};

struct SyncResponse {
  std::string commit;                       // the fleet commit the hub accepted
  std::map<std::string, HubGate> rollouts;  // by rollout name
  nlohmann::json raw;                       // as received, for `eddy status`
};

// Parse a sync answer (fleet/API.md). Errc::invalid_argument naming the field that is missing
// or of the wrong type.
Expected<SyncResponse> parse_sync_response(const nlohmann::json& body);

// The sync request of a device whose state store is `store`: its `labels`, the fleet `commit`
// it accepted, and for each of `targets` what is installed and the state of the latest attempt.
// The update worker's poll and eddyd's own no-op poll (daemon/agent.hpp) send this same request.
SyncRequest sync_request_from_store(storage::StateStore& store, const std::map<std::string, std::string>& labels,
                                    const std::vector<std::string>& targets, const std::string& commit);

// Record a sync the hub answered in the store, under ota/hub_status.hpp's keys: when, "ok", the
// answer (for `eddy status`), reachable.
void record_sync_answer(storage::StateStore& store, const SyncResponse& answer);

// Whether two sync answers tell the device the same: the hub's commit and every rollout's entry
// (release, admitted, rollback, generation, state, step, percent and reason) alike. A device
// that acted on one has nothing to do on the other.
bool same_answer(const SyncResponse& a, const SyncResponse& b);

class HubClient {
 public:
  // Errc::invalid_argument when the URL does not parse.
  static Expected<HubClient> create(HubOptions options, std::string device_id);

  // POST /v1/devices/{id}/sync. Errors (each naming the hub's URL and what to do):
  // Errc::unauthorized for 401/403; Errc::not_found for 404 (hub.url is not a hub);
  // Errc::invalid_argument for another 4xx (the hub refused what was sent); Errc::network for
  // connection failures, 5xx and answers not in the API's format; Errc::timeout.
  Expected<SyncResponse> sync(const SyncRequest& request) const;
  // POST /v1/devices/{id}/reports with `reports` (each with its "id"); the ids the hub
  // acknowledged. Errors as for sync().
  Expected<std::vector<std::string>> post_reports(const nlohmann::json& reports) const;

  const HubOptions& options() const { return options_; }
  const std::string& device_id() const { return device_id_; }

 private:
  HubClient(HubOptions options, std::string device_id) : options_(std::move(options)), device_id_(std::move(device_id)) {}
  Expected<nlohmann::json> post(const std::string& route, const nlohmann::json& body) const;

  HubOptions options_;
  std::string device_id_;
};

}  // namespace eddy::ota
