#include "fleet/director.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "ota/assignment.hpp"
#include "platform/log.hpp"

namespace eddy::fleet {

namespace {

constexpr std::size_t status_events = 50;

bool is_outcome(std::string_view outcome) {
  return outcome == "committed" || outcome == "rolled-back" || outcome == "failed";
}

std::string step_text(const ota::Rollout& spec, int step) {
  return "step " + std::to_string(step + 1) + " of " + std::to_string(spec.steps.size()) + " (" +
         percent_text(spec.steps[static_cast<std::size_t>(step)]) + "%)";
}

std::string rate_text(double rate) { return percent_text(rate * 100) + "%"; }

ota::DeviceIdentity identity_of(const DeviceRecord& d) { return ota::DeviceIdentity{d.id, d.labels}; }

}  // namespace

std::string percent_text(double percent) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", percent);
  std::string s(buffer);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

nlohmann::json percent_json(double percent) {
  if (percent == std::floor(percent) && std::abs(percent) < 1e15) return static_cast<std::int64_t>(percent);
  return percent;
}

std::string_view command_name(Command command) {
  switch (command) {
    case Command::pause: return "pause";
    case Command::resume: return "resume";
    case Command::promote: return "promote";
    case Command::abort: return "abort";
    case Command::retry: return "retry";
  }
  return "unknown";
}

// Who is selected and admitted, and each admitted device's verdict, for one generation.
struct Director::Tally {
  std::vector<std::string> selected;  // ids
  std::size_t admitted = 0;           // devices admitted to the generation (selected or not any more)
  DeviceCounts counts;
  int admitted_selected = 0;
  double rate() const {
    const int decided = counts.succeeded + counts.failed;
    return decided == 0 ? 0.0 : static_cast<double>(counts.failed) / decided;
  }
  int verdicts() const { return counts.succeeded + counts.failed; }
};

Director::Director(Store& store, Clock clock) : store_(store), clock_(std::move(clock)) {}

const ota::Rollout* Director::find_rollout(std::string_view name) const {
  if (!fleet_) return nullptr;
  for (const auto& r : fleet_->rollouts)
    if (r.name == name) return &r;
  return nullptr;
}

Status Director::add_event(const RolloutRecord& record, std::string_view kind, std::string_view message,
                           std::optional<double> value, std::optional<double> threshold) {
  log::notice("rollout " + record.name + ": " + std::string(message));
  return store_.add_event(Event{0, record.name, record.generation, now(), std::string(kind), std::string(message),
                                value, threshold});
}

Status Director::record_hub_event(std::string_view kind, std::string_view message) {
  return store_.add_event(Event{0, "", 0, now(), std::string(kind), std::string(message), std::nullopt, std::nullopt});
}

void Director::notify(std::string_view kind, const RolloutRecord& record, const ota::Rollout& spec,
                      std::string_view message, double value, double threshold) {
  if (!webhook_) return;
  webhook_(WebhookEvent{std::string(kind), record.name, record.release, record.generation, record.step,
                        spec.steps[static_cast<std::size_t>(record.step)], now(), std::string(message), value,
                        threshold});
}

Status Director::start_generation(RolloutRecord& record, const ota::Rollout& spec, std::string_view why) {
  const std::int64_t t = now();
  record.generation += 1;
  record.release = spec.release;
  record.state = "progressing";
  record.step = 0;
  record.step_started_at = t;
  record.generation_started_at = t;
  record.last_verdict = Verdict{};
  if (auto st = store_.save_rollout(record); !st) return st;
  return add_event(record, "generation",
                   "generation " + std::to_string(record.generation) + " of release " + record.release + " (" +
                       std::string(why) + "): " + step_text(spec, 0) + " opens");
}

Status Director::set_fleet(std::string commit, std::int64_t commit_time, ota::Fleet fleet) {
  auto st = store_.transaction([&]() -> Status {
    for (const auto& spec : fleet.rollouts) {
      auto stored = store_.rollout(spec.name);
      if (!stored) return std::unexpected(stored.error());
      RolloutRecord record;
      if (*stored) record = **stored;
      record.name = spec.name;
      record.commit = commit;
      if (!*stored || record.release != spec.release) {
        const std::string why = !*stored ? "a new rollout" : "the rollout's release changed from " + record.release;
        if (auto s = start_generation(record, spec, why); !s) return s;
        continue;
      }
      // Same release: the spec may have changed its steps; keep the step within them.
      record.step = std::min(record.step, static_cast<int>(spec.steps.size()) - 1);
      if (auto s = store_.save_rollout(record); !s) return s;
    }
    return {};
  });
  if (!st) return st;
  commit_ = std::move(commit);
  commit_time_ = commit_time;
  fleet_ = std::move(fleet);
  std::erase_if(generations_, [&](const auto& kept) { return !find_rollout(kept.first); });
  return {};
}

Expected<Director::Tally> Director::tally(const ota::Rollout& spec, const RolloutRecord& record,
                                          const KnownDevices& devices, bool admit) {
  Tally t;
  const std::int64_t at = now();
  const auto release = fleet_->releases.find(spec.release);
  // The selector and the release's compatible labels, judged once per distinct label set.
  std::unordered_map<const Labels*, bool> chosen;
  for (const auto& [id, labels] : devices) {
    auto [it, fresh] = chosen.try_emplace(labels.get(), false);
    if (fresh) {
      const ota::DeviceIdentity identity{id, *labels};
      it->second = ota::selects(spec, identity) &&
                   (release == fleet_->releases.end() || ota::compatible_with(release->second, identity));
    }
    if (it->second) t.selected.push_back(id);
  }
  auto kept = generation(record.name, record.generation);
  if (!kept) return std::unexpected(kept.error());
  Generation& g = **kept;
  auto is_admitted = [&g](const std::string& id) {
    auto it = g.devices.find(id);
    return it != g.devices.end() && it->second.admitted_at >= 0;
  };
  if (admit) {
    const double percent = spec.steps[static_cast<std::size_t>(record.step)];
    std::vector<std::pair<double, const std::string*>> waiting;  // place, id
    for (const auto& id : t.selected) {
      if (is_admitted(id)) continue;
      const double place = ota::place_in_line(id, spec.name);
      if (place < percent) {
        if (auto st = this->admit(g, record.name, id, at, record.step); !st) return std::unexpected(st.error());
      } else {
        waiting.emplace_back(place, &id);
      }
    }
    // A step must be able to close: admit the lowest places up to min(minDevices, selected).
    const std::size_t need = std::min<std::size_t>(static_cast<std::size_t>(spec.min_devices), t.selected.size());
    if (g.admitted < need) {
      std::sort(waiting.begin(), waiting.end(),
                [](const auto& x, const auto& y) { return x.first < y.first || (x.first == y.first && *x.second < *y.second); });
      for (const auto& [place, id] : waiting) {
        if (g.admitted >= need) break;
        if (auto st = this->admit(g, record.name, *id, at, record.step); !st) return std::unexpected(st.error());
      }
    }
  }

  t.admitted = g.admitted;
  const std::int64_t deadline = spec.progress_deadline.count();
  for (const auto& [id, d] : g.devices) {
    if (d.admitted_at < 0) continue;
    if (d.outcome == "committed") ++t.counts.succeeded;
    else if (is_outcome(d.outcome)) ++t.counts.failed;
    else if (at - d.admitted_at > deadline) ++t.counts.failed;  // stuck
    else if (d.reported) ++t.counts.in_progress;
    else ++t.counts.no_data;
  }
  for (const auto& id : t.selected) {
    if (is_admitted(id)) ++t.admitted_selected;
    else ++t.counts.waiting;
  }
  return t;
}

Expected<const Director::KnownDevices*> Director::known_devices() {
  if (!known_) {
    auto devices = store_.devices();
    if (!devices) return std::unexpected(devices.error());
    KnownDevices known;
    known.reserve(devices->size());
    for (const auto& d : *devices) known.emplace(d.id, shared_labels(d.labels));
    known_ = std::move(known);
  }
  return &*known_;
}

std::shared_ptr<const Labels> Director::shared_labels(const Labels& labels) {
  auto it = label_sets_.find(labels);
  if (it == label_sets_.end()) it = label_sets_.emplace(labels, std::make_shared<const Labels>(labels)).first;
  return it->second;
}

void Director::drop_caches() {
  known_.reset();
  label_sets_.clear();
  generations_.clear();
}

Expected<Director::Generation*> Director::generation(const std::string& rollout, std::int64_t number) {
  auto it = generations_.find(rollout);
  if (it != generations_.end() && it->second.number == number) return &it->second;
  Generation g;
  g.number = number;
  auto admissions = store_.admissions(rollout, number);
  if (!admissions) return std::unexpected(admissions.error());
  for (const auto& a : *admissions) g.devices[a.device].admitted_at = a.admitted_at;
  g.admitted = admissions->size();
  auto facts = store_.facts(rollout, number);
  if (!facts) return std::unexpected(facts.error());
  for (const auto& f : *facts) {
    auto& d = g.devices[f.device];
    d.reported = true;
    d.outcome = f.outcome;
  }
  return &(generations_.insert_or_assign(rollout, std::move(g)).first->second);
}

Status Director::admit(Generation& generation, const std::string& rollout, const std::string& device,
                       std::int64_t at, int step) {
  if (auto st = store_.admit(rollout, generation.number, Admission{device, at, step}); !st) return st;
  auto& d = generation.devices[device];
  if (d.admitted_at < 0) {
    d.admitted_at = at;
    ++generation.admitted;
  }
  return {};
}

Status Director::note_fact(const std::string& rollout, std::int64_t generation, const std::string& device,
                           std::int64_t at, const std::string& outcome, const std::string& message) {
  if (auto st = store_.record_fact(rollout, generation, device, at, outcome, message); !st) return st;
  auto it = generations_.find(rollout);
  if (it == generations_.end() || it->second.number != generation) return {};  // read when needed
  auto& d = it->second.devices[device];
  d.reported = true;
  if (!outcome.empty()) d.outcome = outcome;
  return {};
}

Status Director::tick() {
  if (!fleet_) return {};
  const auto began = std::chrono::steady_clock::now();
  ++tick_count_;
  std::erase_if(label_sets_, [](const auto& entry) { return entry.second.use_count() == 1; });
  auto st = [&]() -> Status {
    auto devices = known_devices();
    if (!devices) return std::unexpected(devices.error());
    for (const auto& spec : fleet_->rollouts) {
      if (auto s = tick_one(spec, **devices); !s) {
        log::error("rollout " + spec.name + ": " + s.error().message);
        return s;
      }
    }
    return {};
  }();
  last_tick_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return st;
}

Status Director::tick_one(const ota::Rollout& spec, const KnownDevices& devices) {
  auto looked = store_.transaction([&]() -> Status {
    auto stored = store_.rollout(spec.name);
    if (!stored) return std::unexpected(stored.error());
    if (!*stored) return {};  // set_fleet makes the row; nothing to look at before it
    RolloutRecord record = **stored;
    const bool progressing = record.state == "progressing";
    if (!progressing && record.state != "paused") {
      // Complete, halted or rolled back: nothing to decide; the counts still serve the sync words.
      if (record.state == "complete") {
        auto t = tally(spec, record, devices, true);
        if (!t) return std::unexpected(t.error());
        counts_[spec.name] = {static_cast<int>(t->selected.size()), static_cast<int>(t->admitted)};
      }
      return {};
    }
    auto t = tally(spec, record, devices, progressing);
    if (!t) return std::unexpected(t.error());
    const std::int64_t at = now();
    const double rate = t->rate();
    const int admitted = static_cast<int>(t->admitted);
    const int selected = static_cast<int>(t->selected.size());
    counts_[spec.name] = {selected, admitted};
    Verdict v{at, "wait", rate, spec.max_failure_rate, {}};
    const std::string failures = std::to_string(t->counts.failed) + " of " + std::to_string(t->verdicts()) +
                                 " devices with a verdict failed (" + rate_text(rate) + ")";

    if (t->counts.failed > 0 && rate > spec.max_failure_rate) {
      v.decision = "halt";
      const bool rollback = spec.on_failure == ota::OnFailure::rollback;
      v.message = failures + ", above maxFailureRate " + rate_text(spec.max_failure_rate) + ": " +
                  (rollback ? "halted, devices that took " + record.release + " roll back"
                            : "halted, waiting for an operator (eddy rollout retry " + spec.name + ")");
      record.state = rollback ? "rolled-back" : "halted";
      record.last_verdict = v;
      if (auto st = store_.save_rollout(record); !st) return st;
      if (auto st = add_event(record, "halt", "halted at " + step_text(spec, record.step) + ": " + v.message, rate,
                              spec.max_failure_rate);
          !st)
        return st;
      if (rollback) {
        if (auto st = add_event(record, "rollback",
                                "devices running " + record.release + " are told to roll back to their previous version");
            !st)
          return st;
      }
      notify("halt", record, spec, v.message, rate, spec.max_failure_rate);
      if (rollback) notify("rollback", record, spec, v.message, rate, spec.max_failure_rate);
      return {};
    }

    const std::int64_t baked = at - record.step_started_at;
    const std::int64_t bake = spec.bake.count();
    const int need = std::min(spec.min_devices, admitted);
    if (!progressing) {
      v.message = "paused by an operator (eddy rollout resume " + spec.name + "); " + failures;
    } else if (selected == 0) {
      v.value = 0;
      v.threshold = 1;
      v.message = "no synced device is selected by this rollout yet";
    } else if (baked < bake) {
      v.value = static_cast<double>(baked);
      v.threshold = static_cast<double>(bake);
      v.message = "bake time: " + std::to_string(bake - baked) + " s left at " + step_text(spec, record.step);
    } else if (t->verdicts() < need) {
      v.value = t->verdicts();
      v.threshold = need;
      v.message = std::to_string(t->verdicts()) + " of the " + std::to_string(need) +
                  " devices needed have a verdict (" + std::to_string(t->counts.in_progress) + " in progress, " +
                  std::to_string(t->counts.no_data) + " no data yet)";
    } else if (t->counts.in_progress + t->counts.no_data > 0) {
      // Every admitted device must have a verdict (or be past progressDeadline, which is a
      // failure) before the step closes: a device not heard from is not evidence of health.
      const int pending = t->counts.in_progress + t->counts.no_data;
      v.value = t->verdicts();
      v.threshold = admitted;
      v.message = std::to_string(pending) + " of the " + std::to_string(admitted) +
                  " admitted devices have no verdict yet (" + std::to_string(t->counts.in_progress) +
                  " in progress, " + std::to_string(t->counts.no_data) +
                  " no data yet): the step closes when each has one or is past progressDeadline";
    } else if (static_cast<std::size_t>(record.step) + 1 >= spec.steps.size()) {
      v.decision = "complete";
      v.message = "the last step closed: " + failures + ", within maxFailureRate " + rate_text(spec.max_failure_rate);
      record.state = "complete";
      record.last_verdict = v;
      if (auto st = store_.save_rollout(record); !st) return st;
      if (auto st = add_event(record, "complete", "complete: " + v.message, rate, spec.max_failure_rate); !st) return st;
      notify("complete", record, spec, v.message, rate, spec.max_failure_rate);
      return {};
    } else {
      record.step += 1;
      record.step_started_at = at;
      auto widened = tally(spec, record, devices, true);
      if (!widened) return std::unexpected(widened.error());
      counts_[spec.name] = {selected, static_cast<int>(widened->admitted)};
      v.decision = "widen";
      v.message = step_text(spec, record.step) + ": " + std::to_string(widened->admitted) +
                  " devices admitted; " + failures + ", within maxFailureRate " + rate_text(spec.max_failure_rate);
      record.last_verdict = v;
      if (auto st = store_.save_rollout(record); !st) return st;
      const std::string message =
          step_text(spec, record.step) + ": " + std::to_string(widened->admitted) + " devices admitted";
      if (auto st = add_event(record, "step", message, rate, spec.max_failure_rate); !st) return st;
      notify("step", record, spec, message, rate, spec.max_failure_rate);
      return {};
    }
    if (record.last_verdict.message != v.message) log::debug("rollout " + spec.name + ": " + v.message);
    record.last_verdict = v;
    return store_.save_rollout(record);
  });
  if (!looked) drop_caches();  // admissions it kept may not be stored
  return looked;
}

Expected<std::vector<Gate>> Director::sync(DeviceRecord device) {
  std::vector<Gate> gates;
  auto st = store_.transaction([&]() -> Status {
    const std::int64_t at = now();
    device.first_seen = at;  // save_device keeps the first one of a device it knows
    device.last_seen = at;
    if (auto s = store_.save_device(device); !s) return s;
    if (!fleet_) return {};
    const auto identity = identity_of(device);
    for (const auto& spec : fleet_->rollouts) {
      if (!ota::selects(spec, identity)) continue;
      auto release = fleet_->releases.find(spec.release);
      if (release == fleet_->releases.end() || !ota::compatible_with(release->second, identity)) continue;
      auto stored = store_.rollout(spec.name);
      if (!stored) return std::unexpected(stored.error());
      if (!*stored) continue;
      const RolloutRecord& record = **stored;

      // What the device runs says something about the release too.
      if (auto target = device.targets.find(release->second.target);
          target != device.targets.end() && target->second.release == record.release) {
        const std::string& state = target->second.state;
        if (state == "committed") {
          if (auto s = note_fact(spec.name, record.generation, device.id, at, "committed",
                                 "runs " + record.release + ", committed");
              !s)
            return s;
        } else if (!state.empty() && !is_outcome(state)) {
          if (auto s = note_fact(spec.name, record.generation, device.id, at, "", "state " + state); !s) return s;
        }
      }

      const bool open = record.state == "progressing" || record.state == "complete";
      const double percent = spec.steps[static_cast<std::size_t>(record.step)];
      const double place = ota::place_in_line(device.id, spec.name);
      auto kept = generation(spec.name, record.generation);
      if (!kept) return std::unexpected(kept.error());
      auto known = (*kept)->devices.find(device.id);
      bool admitted = known != (*kept)->devices.end() && known->second.admitted_at >= 0;
      if (open && !admitted && place < percent) {
        if (auto s = admit(**kept, spec.name, device.id, at, record.step); !s) return s;
        admitted = true;
        auto& c = counts_[spec.name];
        c.second += 1;
      }
      Gate g;
      g.rollout = spec.name;
      g.release = record.release;
      g.generation = record.generation;
      g.state = record.state;
      g.step = record.step;
      g.percent = percent;
      g.admitted = open && admitted;
      g.rollback = record.state == "rolled-back";
      auto c = counts_[spec.name];
      const std::string step = step_text(spec, record.step);
      if (record.state == "rolled-back") {
        g.reason = "the rollout was halted and rolled back: a device running " + record.release + " rolls back";
      } else if (record.state == "halted") {
        g.reason = "the rollout is halted (" + record.last_verdict.message + "): nothing new is admitted";
      } else if (record.state == "paused") {
        g.reason = "the rollout is paused by an operator: nothing new is admitted";
      } else if (g.admitted) {
        g.reason = step + " admits " + std::to_string(c.second) + " of " + std::to_string(c.first) +
                   " devices; this device is one of them";
      } else {
        g.reason = step + " admits " + std::to_string(c.second) + " of " + std::to_string(c.first) +
                   " devices; this device's place in line is " + percent_text(place) +
                   (place < spec.steps.back() ? ", a later step admits it" : ", beyond the rollout's last step");
      }
      gates.push_back(std::move(g));
    }
    return {};
  });
  if (!st) {
    drop_caches();
    return std::unexpected(st.error());
  }
  if (known_) (*known_)[device.id] = shared_labels(device.labels);
  return gates;
}

Expected<ReportsOutcome> Director::record_reports(std::string_view device, const std::vector<Report>& reports) {
  ReportsOutcome out;
  auto st = store_.transaction([&]() -> Status {
    const std::int64_t at = now();
    std::map<std::string, std::optional<RolloutRecord>> records;  // by rollout name, read once
    // What the batch says for each rollout, written once: the latest report with an outcome, or
    // else the latest report (record_fact in report order would end the same).
    struct Fact {
      std::int64_t generation = 0;
      std::string outcome, message;
    };
    std::map<std::string, Fact> facts;
    for (const auto& report : reports) {
      auto added = store_.add_report(device, report, at);
      if (!added) return std::unexpected(added.error());
      if (!*added) {
        ++out.duplicates;
        continue;
      }
      ++out.added;
      if (report.release.empty() || !fleet_) continue;
      // The rollout the report is about: named, or the one whose release it names.
      std::string name = report.rollout;
      if (name.empty()) {
        for (const auto& r : fleet_->rollouts)
          if (r.release == report.release) name = r.name;
      }
      if (name.empty() || !find_rollout(name)) continue;
      auto it = records.find(name);
      if (it == records.end()) {
        auto stored = store_.rollout(name);
        if (!stored) return std::unexpected(stored.error());
        it = records.emplace(name, *stored).first;
      }
      const auto& record = it->second;
      if (!record || record->release != report.release) continue;
      // Reports of an older generation (a device catching up) no longer count.
      if (report.generation != 0 && report.generation != record->generation) continue;
      const std::string outcome = report.kind == "transition" && is_outcome(report.outcome) ? report.outcome : "";
      std::string message = report.message;
      if (message.empty() && !report.to.empty()) message = report.from + " -> " + report.to;
      auto& fact = facts[name];
      if (!outcome.empty() || fact.outcome.empty()) fact = Fact{record->generation, outcome, std::move(message)};
      if (!outcome.empty()) out.verdict_changed = true;
    }
    for (const auto& [name, fact] : facts)
      if (auto s = note_fact(name, fact.generation, std::string(device), at, fact.outcome, fact.message); !s)
        return s;
    return {};
  });
  if (!st) {
    drop_caches();
    return std::unexpected(st.error());
  }
  return out;
}

Expected<RolloutStatus> Director::make_status(const ota::Rollout& spec, const KnownDevices& devices) {
  auto stored = store_.rollout(spec.name);
  if (!stored) return std::unexpected(stored.error());
  if (!*stored) return make_error(Errc::not_found, "rollout `" + spec.name + "` has no state yet");
  RolloutStatus s;
  s.record = **stored;
  s.spec = spec;
  auto t = tally(spec, s.record, devices, false);
  if (!t) return std::unexpected(t.error());
  s.selected = static_cast<int>(t->selected.size());
  s.admitted = static_cast<int>(t->admitted);
  s.devices = t->counts;
  auto events = store_.events(0, &spec.name, status_events);
  if (!events) return std::unexpected(events.error());
  s.events = std::move(*events);
  return s;
}

Expected<RolloutStatus> Director::status(std::string_view rollout) {
  const auto* spec = find_rollout(rollout);
  if (!spec)
    return make_error(Errc::not_found, "no rollout `" + std::string(rollout) + "` in the hub's fleet commit" +
                                           (commit_.empty() ? " (no commit accepted yet)" : " " + commit_.substr(0, 7)));
  auto devices = known_devices();
  if (!devices) return std::unexpected(devices.error());
  return make_status(*spec, **devices);
}

Expected<std::vector<RolloutStatus>> Director::statuses() {
  std::vector<RolloutStatus> out;
  if (!fleet_) return out;
  auto devices = known_devices();
  if (!devices) return std::unexpected(devices.error());
  for (const auto& spec : fleet_->rollouts) {
    auto s = make_status(spec, **devices);
    if (!s) return std::unexpected(s.error());
    out.push_back(std::move(*s));
  }
  return out;
}

Expected<RolloutStatus> Director::command(std::string_view rollout, Command command, std::string_view by) {
  const auto* spec = find_rollout(rollout);
  if (!spec) return status(rollout);  // the not_found error
  const std::string who = by.empty() ? "an operator" : std::string(by);
  auto st = store_.transaction([&]() -> Status {
    auto stored = store_.rollout(spec->name);
    if (!stored) return std::unexpected(stored.error());
    if (!*stored) return make_error(Errc::not_found, "rollout `" + spec->name + "` has no state yet");
    RolloutRecord record = **stored;
    const std::string& state = record.state;
    auto refuse = [&](std::string why) {
      return make_error(Errc::conflict, "cannot " + std::string(command_name(command)) + " rollout `" + spec->name +
                                            "`: it is " + state + "; " + why);
    };
    switch (command) {
      case Command::pause:
        if (state == "paused") return {};
        if (state != "progressing") return refuse("only a progressing rollout can be paused");
        record.state = "paused";
        if (auto s = store_.save_rollout(record); !s) return s;
        return add_event(record, "paused", "paused by " + who + " at " + step_text(*spec, record.step));
      case Command::resume:
        if (state == "progressing") return {};
        if (state != "paused")
          return refuse(state == "halted" || state == "rolled-back"
                            ? "a halted rollout starts again only with `eddy rollout retry " + spec->name + "`"
                            : "only a paused rollout can be resumed");
        record.state = "progressing";
        if (auto s = store_.save_rollout(record); !s) return s;
        return add_event(record, "resumed", "resumed by " + who + " at " + step_text(*spec, record.step));
      case Command::promote: {
        if (state != "progressing" && state != "paused")
          return refuse("only a progressing or paused rollout can be promoted");
        const int last = static_cast<int>(spec->steps.size()) - 1;
        const bool widened = record.step != last;
        if (!widened && state == "progressing") return {};  // already at the last step
        record.state = "progressing";
        record.step = last;
        if (widened) record.step_started_at = now();
        if (auto s = store_.save_rollout(record); !s) return s;
        const std::string message = "promoted by " + who + " to " + step_text(*spec, last);
        if (auto s = add_event(record, "step", message); !s) return s;
        if (widened) notify("step", record, *spec, message, 0, spec->max_failure_rate);
        return {};
      }
      case Command::abort: {
        if (state != "progressing" && state != "paused" && state != "halted")
          return refuse(state == "complete" ? "commit another release to the rollout file to move the fleet on"
                                            : "it is not running");
        record.state = "rolled-back";
        Verdict v{now(), "halt", 0, 0, "aborted by " + who + ": devices running " + record.release + " roll back"};
        record.last_verdict = v;
        if (auto s = store_.save_rollout(record); !s) return s;
        if (auto s = add_event(record, "halt", v.message); !s) return s;
        if (auto s = add_event(record, "rollback",
                               "devices running " + record.release + " are told to roll back to their previous version");
            !s)
          return s;
        notify("halt", record, *spec, v.message, 0, 0);
        notify("rollback", record, *spec, v.message, 0, 0);
        return {};
      }
      case Command::retry:
        if (state != "halted" && state != "rolled-back")
          return refuse("only a halted or rolled-back rollout can be retried");
        return start_generation(record, *spec, "retried by " + who);
    }
    return {};
  });
  if (!st) return std::unexpected(st.error());
  auto devices = known_devices();
  if (!devices) return std::unexpected(devices.error());
  // Let the command take effect at once (admissions of a promoted step, a resumed verdict).
  if (auto t = tick_one(*spec, **devices); !t) return std::unexpected(t.error());
  return make_status(*spec, **devices);
}

}  // namespace eddy::fleet
