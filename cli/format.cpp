#include "cli/format.hpp"

#include <cmath>
#include <ctime>
#include <sstream>

namespace eddy::cli {

using nlohmann::json;

const json& field(const json& object, const char* key) {
  static const json null_value;
  if (!object.is_object()) return null_value;
  auto it = object.find(key);
  return it == object.end() ? null_value : *it;
}

std::string text(const json& object, const char* key, const std::string& fallback) {
  const auto& value = field(object, key);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return fallback;
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<std::int64_t> integer(const json& object, const char* key) {
  const auto& value = field(object, key);
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number_float()) return static_cast<std::int64_t>(value.get<double>());
  return std::nullopt;
}

std::optional<double> real(const json& object, const char* key) {
  const auto& value = field(object, key);
  if (value.is_number()) return value.get<double>();
  return std::nullopt;
}

std::string short_commit(const std::string& commit) { return commit.size() > 12 ? commit.substr(0, 12) : commit; }

std::string duration_words(std::int64_t seconds) {
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600) return std::to_string(seconds / 60) + "m" + (seconds % 60 ? std::to_string(seconds % 60) + "s" : "");
  if (seconds < 86400) return std::to_string(seconds / 3600) + "h" + (seconds % 3600 / 60 ? std::to_string(seconds % 3600 / 60) + "m" : "");
  return std::to_string(seconds / 86400) + "d" + (seconds % 86400 / 3600 ? std::to_string(seconds % 86400 / 3600) + "h" : "");
}

std::string when(const json& object, const char* key, std::int64_t now) {
  auto at = integer(object, key);
  if (!at || *at <= 0) return "-";
  return local_time(*at) + " (" + relative_time(*at, now) + ")";
}

std::string local_time(std::int64_t epoch_seconds) {
  std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm tm{};
  if (!localtime_r(&t, &tm)) return std::to_string(epoch_seconds);
  char buffer[32];
  if (std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S", &tm) == 0) return std::to_string(epoch_seconds);
  return buffer;
}

std::string relative_time(std::int64_t epoch_seconds, std::int64_t now) {
  auto delta = epoch_seconds - now;
  if (delta == 0) return "now";
  if (delta > 0) return "in " + duration_words(delta);
  return duration_words(-delta) + " ago";
}

std::string human_bytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(units)) {
    bytes /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(unit == 0 ? 0 : 1);
  out << bytes << ' ' << units[unit];
  return out.str();
}

std::string format_status(const json& status, std::int64_t now) {
  std::ostringstream out;
  const auto& device = field(status, "device");
  out << "device    " << text(device, "id");
  const auto& labels = field(device, "labels");
  if (labels.is_object() && !labels.empty()) {
    out << "  (";
    bool first = true;
    for (const auto& [key, value] : labels.items()) {
      out << (first ? "" : ", ") << key << '=' << (value.is_string() ? value.get<std::string>() : value.dump());
      first = false;
    }
    out << ')';
  }
  out << '\n';
  out << "state     " << text(status, "state");
  if (auto activity = text(status, "activity", ""); !activity.empty()) out << ": " << activity;
  out << '\n';

  const auto& source = field(status, "source");
  if (source.is_object()) {
    out << "source    " << text(source, "url") << "  branch " << text(source, "branch") << '\n';
    auto accepted = text(source, "accepted_commit", "");
    out << "          accepted   " << (accepted.empty() ? "none yet" : short_commit(accepted));
    if (!accepted.empty()) out << "  " << when(source, "accepted_at", now);
    out << '\n';
    out << "          last poll  " << when(source, "last_poll_at", now);
    if (auto result = text(source, "last_poll_result", ""); !result.empty()) out << ": " << result;
    out << '\n';
    out << "          next poll  " << when(source, "next_poll_at", now) << '\n';
  }

  const auto& hub = field(status, "hub");
  if (hub.is_object()) {
    out << "hub       " << text(hub, "url") << '\n';
    out << "          last sync  " << when(hub, "last_sync_at", now);
    if (auto result = text(hub, "last_sync_result", ""); !result.empty()) out << ": " << result;
    out << '\n';
    for (const auto& [name, gate] : field(hub, "rollouts").items()) {
      out << "          rollout " << name << "  " << text(gate, "release") << ": "
          << (field(gate, "rollback") == true ? "roll back" : field(gate, "admitted") == true ? "admitted" : "not admitted")
          << " (generation " << integer(gate, "generation").value_or(0) << ", " << text(gate, "state") << ")";
      if (auto reason = text(gate, "reason", ""); !reason.empty()) out << ": " << reason;
      out << '\n';
    }
    out << "          reports    " << integer(hub, "outbox").value_or(0) << " waiting";
    if (auto result = text(hub, "last_report_result", ""); !result.empty())
      out << "; last sent " << when(hub, "last_report_at", now) << ": " << result;
    out << '\n';
  }

  const auto& update = field(status, "update");
  if (update.is_object()) {
    out << "update    " << text(update, "target") << " -> " << text(update, "version") << " ("
        << text(update, "release") << "): " << text(update, "state") << " since " << when(update, "since", now)
        << '\n';
    const auto& progress = field(update, "progress");
    if (progress.is_object()) {
      auto bytes = real(progress, "bytes");
      auto total = real(progress, "total");
      out << "          " << human_bytes(bytes.value_or(0));
      if (total && *total > 0)
        out << " of " << human_bytes(*total) << " (" << static_cast<int>(std::floor(bytes.value_or(0) * 100 / *total))
            << "%)";
      if (auto rate = real(progress, "rate"); rate && *rate > 0) out << ", " << human_bytes(*rate) << "/s";
      if (auto eta = integer(progress, "eta_seconds"); eta && *eta >= 0) out << ", about " << duration_words(*eta) << " left";
      out << '\n';
    }
  } else {
    out << "update    none running\n";
  }

  const auto& targets = field(status, "targets");
  if (targets.is_array() && !targets.empty()) {
    out << "targets\n";
    for (const auto& target : targets) {
      out << "  " << text(target, "name") << "  " << text(target, "type") << "  " << text(target, "current_version")
          << "  " << text(target, "state");
      if (auto previous = text(target, "previous_version", ""); !previous.empty()) out << "  (previous " << previous << ")";
      out << '\n';
      if (auto release = text(target, "release", ""); !release.empty())
        out << "      release  " << release << ", updated " << when(target, "updated_at", now) << '\n';
      if (auto outcome = text(target, "last_outcome", ""); !outcome.empty()) {
        out << "      last     " << outcome;
        if (auto message = text(target, "last_message", ""); !message.empty()) out << ": " << message;
        out << '\n';
      }
    }
  } else {
    out << "targets   none configured\n";
  }
  return out.str();
}

std::string format_history(const json& history) {
  const auto& entries = field(history, "entries");
  if (!entries.is_array() || entries.empty()) return "no history yet\n";
  std::ostringstream out;
  for (const auto& entry : entries) {
    auto at = integer(entry, "at");
    out << (at ? local_time(*at) : std::string("-")) << "  ";
    auto kind = text(entry, "kind");
    auto update_id = integer(entry, "update_id");
    std::string update = update_id ? "  [update " + std::to_string(*update_id) + "]" : "";
    if (kind == "transition") {
      out << text(entry, "target") << ' ' << text(entry, "version") << "  " << text(entry, "from") << " -> "
          << text(entry, "to");
      if (auto message = text(entry, "message", ""); !message.empty()) out << "  " << message;
      out << update;
    } else if (kind == "event") {
      out << text(entry, "level", "info") << "  " << text(entry, "message", "");
    } else if (kind == "probe") {
      const auto& ok = field(entry, "ok");
      out << "probe " << text(entry, "probe");
      if (auto iteration = integer(entry, "iteration")) out << " #" << *iteration;
      out << (ok.is_boolean() ? (ok.get<bool>() ? " ok" : " FAILED") : " -");
      if (auto detail = text(entry, "detail", ""); !detail.empty()) out << ": " << detail;
      out << update;
    } else {
      out << kind << "  " << text(entry, "message", "");
    }
    out << '\n';
  }
  return out.str();
}

bool check_failed(const json& check) {
  auto outcome = text(check, "outcome", "");
  return outcome == "refused" || outcome == "rolled-back" || outcome == "failed";
}

std::string format_check(const json& check) {
  auto outcome = text(check, "outcome", "");
  auto commit = short_commit(text(check, "commit", ""));
  auto message = text(check, "message", "");
  std::string line;
  if (outcome == "up-to-date") line = "up to date";
  else if (outcome == "updated") line = "updated";
  else if (outcome == "refused") line = "refused";
  else if (outcome == "rolled-back") line = "update failed and was rolled back";
  else if (outcome == "failed") line = "update failed";
  else if (outcome == "not-admitted") line = "nothing to install for this device yet";
  else if (outcome == "rebooting") line = "rebooting into the new root file system";
  else line = outcome.empty() ? "done" : outcome;
  if (!commit.empty()) line += " (commit " + commit + ")";
  if (!message.empty()) line += ": " + message;
  return line + "\n";
}

std::string format_rollback(const json& rollback) {
  return "rolled back " + text(rollback, "target") + " from " + text(rollback, "from_version") + " to " +
         text(rollback, "to_version") + "\n";
}

}  // namespace eddy::cli
