#include "cli/rollout_format.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <sstream>
#include <vector>

#include "cli/format.hpp"

namespace eddy::cli {

using nlohmann::json;

namespace {

std::int64_t count(const json& object, const char* key) {
  return std::max<std::int64_t>(0, integer(object, key).value_or(0));
}

// 10, 2.5, 0.25: integers without decimals, others with at most two.
std::string number_text(double value) {
  if (!std::isfinite(value)) return "-";
  if (std::fabs(value - std::round(value)) < 1e-9) return std::to_string(static_cast<long long>(std::llround(value)));
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(2);
  out << value;
  auto s = out.str();
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string percent_of_fraction(double fraction) { return number_text(fraction * 100) + "%"; }

std::string step_text(const json& rollout) {
  const auto& steps = field(rollout, "steps");
  const auto total = steps.is_array() ? steps.size() : 0;
  const auto step = integer(rollout, "step");
  std::string out = "step " + (step ? std::to_string(*step + 1) : std::string("-")) + "/" + std::to_string(total);
  if (auto percent = real(rollout, "percent")) out += " " + number_text(*percent) + "%";
  return out;
}

// "1% > [10%] > 50% > 100%": the current step in brackets; all of them done when complete.
std::string steps_line(const json& rollout) {
  const auto& steps = field(rollout, "steps");
  if (!steps.is_array() || steps.empty()) return "-";
  const auto current = integer(rollout, "step").value_or(-1);
  const bool complete = text(rollout, "state") == "complete";
  std::string out;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    std::string percent = steps[i].is_number() ? number_text(steps[i].get<double>()) + "%" : steps[i].dump();
    if (!out.empty()) out += " > ";
    out += !complete && static_cast<std::int64_t>(i) == current ? "[" + percent + "]" : percent;
  }
  if (complete) out += "  (all done)";
  return out;
}

std::string verdict_line(const json& rollout, std::int64_t now) {
  const auto& verdict = field(rollout, "last_verdict");
  if (!verdict.is_object()) return "none yet";
  std::string out = text(verdict, "decision");
  auto value = real(verdict, "value");
  auto threshold = real(verdict, "threshold");
  if (value && threshold) {
    // What value and threshold are depends on the decision (fleet/API.md): the failure rate and
    // maxFailureRate for halt, widen, complete and a paused wait; seconds baked and the bake
    // time for a bake wait; verdicts and the devices needed for a minDevices wait.
    auto same = [&](const char* key) {
      auto limit = real(rollout, key);
      return limit && std::fabs(*threshold - *limit) < 1e-9;
    };
    const auto needed = std::min(count(rollout, "min_devices"), count(rollout, "admitted"));
    const bool waiting = text(verdict, "decision") == "wait" && text(rollout, "state") != "paused";
    if (waiting && same("bake_seconds"))
      out += ": baked " + duration_words(static_cast<std::int64_t>(*value)) + " of " +
             duration_words(static_cast<std::int64_t>(*threshold));
    else if (waiting && needed > 0 && *threshold == static_cast<double>(needed))
      out += ": " + number_text(*value) + " of " + number_text(*threshold) + " verdicts needed";
    else if (same("max_failure_rate"))
      out += ": failure rate " + percent_of_fraction(*value) + " (at most " + percent_of_fraction(*threshold) + ")";
    else
      out += ": value " + number_text(*value) + " (threshold " + number_text(*threshold) + ")";
  }
  if (auto message = text(verdict, "message", ""); !message.empty()) out += ": " + message;
  if (integer(verdict, "at")) out += "  [" + when(verdict, "at", now) + "]";
  return out;
}

std::string gate_line(const json& rollout, std::int64_t now) {
  std::string out;
  if (auto bake = integer(rollout, "bake_seconds")) {
    out += "bake " + duration_words(*bake);
    auto started = integer(rollout, "step_started_at");
    if (started && *started > 0 && text(rollout, "state") == "progressing")
      out += " (" + duration_words(std::max<std::int64_t>(0, now - *started)) + " so far)";
  }
  if (auto min = integer(rollout, "min_devices"))
    out += std::string(out.empty() ? "" : " · ") + "needs " + std::to_string(*min) + " device" +
           (*min == 1 ? "" : "s") + " with a verdict";
  if (auto rate = real(rollout, "max_failure_rate"))
    out += std::string(out.empty() ? "" : " · ") + "at most " + percent_of_fraction(*rate) + " failing";
  if (auto deadline = integer(rollout, "progress_deadline_seconds"); deadline && *deadline > 0)
    out += std::string(out.empty() ? "" : " · ") + "stuck after " + duration_words(*deadline);
  if (auto on_failure = text(rollout, "on_failure", ""); !on_failure.empty())
    out += std::string(out.empty() ? "" : " · ") + "on failure " + on_failure;
  return out.empty() ? "-" : out;
}

std::string labels_text(const json& labels) {
  if (!labels.is_object() || labels.empty()) return "-";
  std::string out;
  for (const auto& [key, value] : labels.items())
    out += (out.empty() ? "" : ",") + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
  return out;
}

std::string targets_text(const json& targets) {
  if (!targets.is_object() || targets.empty()) return "-";
  std::string out;
  for (const auto& [name, target] : targets.items()) {
    const auto version = text(target, "version", "");
    out += (out.empty() ? "" : "; ") + name + " " + (version.empty() ? std::string("(none)") : version);
    if (auto state = text(target, "state", ""); !state.empty()) out += " " + state;
  }
  return out;
}

}  // namespace

std::string device_bar(const json& devices, std::size_t width) {
  static constexpr std::array<const char*, 5> keys{"succeeded", "failed", "in_progress", "no_data", "waiting"};
  static constexpr std::array<const char*, 5> marks{"#", "x", ">", "?", "\u00b7"};
  std::array<std::int64_t, 5> counts{};
  std::int64_t total = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) total += counts[i] = count(devices, keys[i]);
  std::array<std::size_t, 5> cells{};
  if (total > 0 && width > 0) {
    // Largest remainder, then at least one cell for every state that has devices (taken from
    // the state with the most cells), so that a single failure is never rounded away.
    std::array<double, 5> exact{};
    std::size_t given = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      exact[i] = static_cast<double>(counts[i]) * static_cast<double>(width) / static_cast<double>(total);
      cells[i] = static_cast<std::size_t>(std::floor(exact[i]));
      given += cells[i];
    }
    while (given < width) {
      std::size_t best = 0;
      for (std::size_t i = 1; i < keys.size(); ++i)
        if (exact[i] - std::floor(exact[i]) > exact[best] - std::floor(exact[best])) best = i;
      ++cells[best];
      exact[best] = std::floor(exact[best]);  // used its remainder
      ++given;
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (counts[i] == 0 || cells[i] > 0) continue;
      auto largest = static_cast<std::size_t>(std::max_element(cells.begin(), cells.end()) - cells.begin());
      if (cells[largest] <= 1) break;  // narrower than the number of states
      --cells[largest];
      ++cells[i];
    }
  } else {
    cells[4] = width;
  }
  std::string out = "[";
  for (std::size_t i = 0; i < keys.size(); ++i)
    for (std::size_t c = 0; c < cells[i]; ++c) out += marks[i];
  return out + "]";
}

std::string device_counts(const json& rollout) {
  const auto& devices = field(rollout, "devices");
  return std::to_string(count(rollout, "admitted")) + "/" + std::to_string(count(rollout, "selected")) +
         " admitted \u00b7 " + std::to_string(count(devices, "succeeded")) + " ok \u00b7 " +
         std::to_string(count(devices, "failed")) + " failed \u00b7 " + std::to_string(count(devices, "in_progress")) +
         " in progress \u00b7 " + std::to_string(count(devices, "no_data")) + " no data";
}

std::string rollout_summary(const json& rollout) {
  return text(rollout, "name") + "  " + text(rollout, "state") + "  " + step_text(rollout) + "  " +
         device_counts(rollout);
}

std::string format_rollout(const json& rollout, std::int64_t now, std::size_t max_events) {
  std::ostringstream out;
  const auto state = text(rollout, "state");
  // A halted or rolled-back rollout shouts: it needs an operator.
  std::string shown_state = state;
  if (rollout_failed(rollout))
    std::transform(shown_state.begin(), shown_state.end(), shown_state.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  out << text(rollout, "name") << "  " << shown_state << "  release " << text(rollout, "release");
  std::string details;
  if (auto generation = integer(rollout, "generation")) details = "generation " + std::to_string(*generation);
  if (auto commit = text(rollout, "commit", ""); !commit.empty())
    details += (details.empty() ? "" : ", ") + std::string("commit ") + short_commit(commit);
  if (!details.empty()) out << " (" << details << ")";
  out << '\n';
  out << "  steps    " << steps_line(rollout) << '\n';
  out << "  " << step_text(rollout) << "  " << device_bar(field(rollout, "devices")) << "  " << device_counts(rollout)
      << '\n';
  const auto failed = count(field(rollout, "devices"), "failed");
  if (failed > 0) {
    const auto admitted = count(rollout, "admitted");
    out << "  FAILED   " << failed << " device" << (failed == 1 ? "" : "s") << " failed";
    if (admitted > 0)
      out << " (" << number_text(100.0 * static_cast<double>(failed) / static_cast<double>(admitted)) << "% of the "
          << admitted << " admitted)";
    out << '\n';
  }
  out << "  gate     " << gate_line(rollout, now) << '\n';
  out << "  verdict  " << verdict_line(rollout, now) << '\n';
  const auto& events = field(rollout, "events");
  if (events.is_array() && !events.empty() && max_events > 0) {
    const auto shown = std::min(events.size(), max_events);
    out << "  events"
        << (shown < events.size() ? " (newest " + std::to_string(shown) + " of " + std::to_string(events.size()) + ")"
                                  : std::string())
        << '\n';
    for (std::size_t i = events.size() - shown; i < events.size(); ++i) {
      const auto& event = events[i];
      auto at = integer(event, "at");
      out << "    " << (at ? local_time(*at) : std::string("-")) << "  " << text(event, "kind") << "  "
          << text(event, "message", "") << '\n';
    }
  }
  return out.str();
}

std::string format_rollouts(const json& list, std::int64_t now) {
  const auto& rollouts = field(list, "rollouts");
  if (!rollouts.is_array() || rollouts.empty())
    return "no rollouts: the hub's fleet commit has no rollouts/*.yaml (or the hub has not accepted a commit yet)\n";
  std::string out;
  for (const auto& rollout : rollouts) {
    if (!out.empty()) out += '\n';
    out += format_rollout(rollout, now, 3);
  }
  return out;
}

std::string format_devices(const json& list, std::int64_t now) {
  const auto& devices = field(list, "devices");
  if (!devices.is_array() || devices.empty()) return "no devices\n";
  std::vector<std::array<std::string, 5>> rows{{"ID", "LAST SEEN", "COMMIT", "LABELS", "TARGETS"}};
  for (const auto& device : devices) {
    auto seen = integer(device, "last_seen");
    rows.push_back({text(device, "id"), seen && *seen > 0 ? relative_time(*seen, now) : std::string("never"),
                    short_commit(text(device, "commit", "-")), labels_text(field(device, "labels")),
                    targets_text(field(device, "targets"))});
  }
  std::array<std::size_t, 5> widths{};
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  std::ostringstream out;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      out << row[i];
      if (i + 1 < row.size()) out << std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << '\n';
  }
  out << devices.size() << " device" << (devices.size() == 1 ? "" : "s") << '\n';
  return out.str();
}

bool rollout_failed(const json& rollout) {
  const auto state = text(rollout, "state");
  return state == "halted" || state == "rolled-back";
}

bool rollout_settled(const json& rollout) { return rollout_failed(rollout) || text(rollout, "state") == "complete"; }

}  // namespace eddy::cli
