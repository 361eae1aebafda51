#include "daemon/status.hpp"

#include "ota/hub_status.hpp"

namespace eddy::daemon {

nlohmann::json status_json(const Config& config, storage::StateStore& store, const ota::AppSupervisor& supervisor,
                           const LiveStatus& live) {
  nlohmann::json j;
  j["device"] = {{"id", config.device_id}, {"labels", config.labels}};
  auto get = [&](const char* key) -> std::string {
    auto v = store.get(key);
    return v && *v ? **v : "";
  };
  auto as_int = [](const std::string& s) -> std::int64_t {
    try {
      return s.empty() ? 0 : std::stoll(s);
    } catch (...) {
      return 0;
    }
  };
  j["activity"] = live.activity;
  j["update"] = live.update;
  j["state"] = live.update.is_object() ? live.update.value("state", "idle") : "idle";
  j["worker"] = live.worker;
  j["source"] = {{"url", config.source_url},
                 {"branch", config.source_branch},
                 {"accepted_commit", get("accepted_commit")},
                 {"accepted_at", as_int(get("accepted_at"))},
                 {"last_poll_at", as_int(get("last_poll_at"))},
                 {"last_poll_result", get("last_poll_result")},
                 {"next_poll_at", live.next_poll_at}};
  nlohmann::json targets = nlohmann::json::array();
  auto describe = [&](const std::string& name, std::string_view type) {
    nlohmann::json t = {{"name", name}, {"type", type}};
    auto inst = store.installed(name);
    if (inst && *inst) {
      t["current_version"] = (*inst)->current_version;
      t["previous_version"] = (*inst)->previous_version;
      t["release"] = (*inst)->current_release;
      t["updated_at"] = (*inst)->updated_at;
    } else {
      t["current_version"] = nullptr;
      t["previous_version"] = nullptr;
      t["release"] = nullptr;
    }
    auto latest = store.latest_update(name);
    if (latest && *latest) {
      t["state"] = (*latest)->state;
      t["last_outcome"] = (*latest)->outcome;
      t["last_message"] = (*latest)->message;
      t["last_release"] = (*latest)->release;
    }
    return t;
  };
  for (const auto& [name, app] : config.apps) {
    nlohmann::json t = describe(name, "app");
    if (!app.run.empty()) {
      t["running"] = supervisor.pid(name).has_value();
      t["restarts"] = supervisor.restarts(name);
    }
    targets.push_back(std::move(t));
  }
  // Container targets are the installed targets that are not apps.
  if (config.containers) {
    if (auto installed = store.all_installed()) {
      for (const auto& inst : *installed)
        if (!config.apps.contains(inst.target) && inst.target != "rootfs") targets.push_back(describe(inst.target, "container"));
    }
  }
  if (config.rootfs) targets.push_back(describe("rootfs", "rootfs"));
  j["targets"] = std::move(targets);
  j["hub"] = config.hub_url ? ota::hub_status_json(store, *config.hub_url) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json history_json(storage::StateStore& store, int limit) {
  auto entries = store.history(limit);
  nlohmann::json out = nlohmann::json::array();
  if (!entries) return nlohmann::json{{"entries", out}, {"error", entries.error().message}};
  for (const auto& h : *entries) {
    nlohmann::json e = {{"at", static_cast<double>(h.at_us) / 1e6}, {"kind", h.kind}};
    if (h.kind == "transition") {
      e.update({{"update_id", h.update_id},
                {"target", h.target},
                {"release", h.release},
                {"version", h.version},
                {"from", h.from},
                {"to", h.to},
                {"message", h.message}});
    } else if (h.kind == "event") {
      e.update({{"level", h.level}, {"message", h.message}});
    } else {
      e.update({{"update_id", h.update_id},
                {"target", h.target},
                {"release", h.release},
                {"probe", h.probe},
                {"iteration", h.iteration},
                {"ok", h.ok},
                {"detail", h.detail}});
    }
    out.push_back(std::move(e));
  }
  return nlohmann::json{{"entries", out}};
}

}  // namespace eddy::daemon
