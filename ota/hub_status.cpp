#include "ota/hub_status.hpp"

#include <optional>

namespace eddy::ota {

nlohmann::json hub_status_json(storage::StateStore& store, const std::string& url) {
  auto get = [&](const char* key) -> std::optional<std::string> {
    auto v = store.get(key);
    return v && *v ? std::optional<std::string>(**v) : std::nullopt;
  };
  auto as_int = [&](const char* key) -> std::int64_t {
    auto text = get(key);
    if (!text || text->empty()) return 0;
    try {
      return std::stoll(*text);
    } catch (const std::exception&) {
      return 0;
    }
  };
  nlohmann::json rollouts = nlohmann::json::object();
  if (auto raw = get(kHubLastSync)) {
    auto sync = nlohmann::json::parse(*raw, nullptr, false);
    if (sync.is_object() && sync.contains("rollouts") && sync["rollouts"].is_object()) rollouts = sync["rollouts"];
  }
  auto waiting = store.outbox_size();
  return nlohmann::json{{"url", url},
                        {"last_sync_at", as_int(kHubLastSyncAt)},
                        {"last_sync_result", get(kHubLastSyncResult).value_or("")},
                        {"last_report_at", as_int(kHubLastReportAt)},
                        {"last_report_result", get(kHubLastReportResult).value_or("")},
                        {"outbox", waiting ? *waiting : -1},
                        {"rollouts", rollouts}};
}

}  // namespace eddy::ota
