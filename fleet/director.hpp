// The rollout director: per rollout of the hub's accepted fleet commit, which devices are
// admitted to its release, what they reported, and whether the rollout waits, widens to its
// next step, completes or halts (DESIGN.md "The hub", fleet/API.md). Deterministic given its
// clock, so tests drive it with an injected one. Runs on one thread (the hub's event loop),
// with everything it changes written through the Store in one transaction per decision.
//
// Rules:
// - A rollout's release comes from the accepted fleet commit. A release other than the stored
//   one (a new rollout, or a new release committed mid-rollout) starts a new generation: step 0,
//   progressing; admissions and reports of older generations no longer count.
// - Selected devices: known devices (they have synced) that the rollout's selector matches
//   (ota::selects) and that meet the release's compatible labels (ota::compatible_with).
// - Admission at step i (percent p): a selected device is admitted when its place in line
//   (ota::place_in_line, as devices compute it without a hub) is below p; when fewer than
//   min(minDevices, selected) are admitted, the lowest places are added until that many are, so
//   a step can always close. Admission is sticky within a generation. Devices are admitted while
//   the rollout progresses (at each tick, and at once when they sync) or after it completed.
// - Verdict per admitted device: success (reported outcome `committed` for the release, or syncs
//   with it installed and committed), failure (`rolled-back` or `failed`, or admitted longer than
//   progressDeadline without either: stuck), in progress (reported something, no verdict yet),
//   no data (nothing yet: not a failure, but not a verdict either).
// - Each tick of a progressing or paused rollout: rate = failed / (succeeded + failed), 0 when
//   neither. failed > 0 and rate > maxFailureRate halts it (onFailure rollback: rolled-back,
//   devices are told to roll back; pause: halted). A progressing rollout widens when bake has
//   passed since its step started, at least min(minDevices, admitted) admitted devices have a
//   verdict, and the rate is at most maxFailureRate; closing the last step completes it.
// - Every tick records its verdict (decision, the value and threshold that decided, plain
//   words); events and webhooks only when something changes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "fleet/store.hpp"
#include "ota/model.hpp"
#include "platform/error.hpp"

namespace eddy::fleet {

// Unix seconds.
using Clock = std::function<std::int64_t()>;

using Labels = std::map<std::string, std::string>;

// What a webhook posts (fleet/API.md, "Webhooks").
struct WebhookEvent {
  std::string kind;  // step | halt | complete | rollback
  std::string rollout, release;
  std::int64_t generation = 0;
  int step = 0;
  double percent = 0;
  std::int64_t at = 0;
  std::string message;
  double value = 0, threshold = 0;
};

struct DeviceCounts {
  int succeeded = 0, failed = 0, in_progress = 0, no_data = 0;
  int waiting = 0;  // selected, not admitted
};

// A rollout's status as the operator API shows it.
struct RolloutStatus {
  RolloutRecord record;
  ota::Rollout spec;
  int selected = 0, admitted = 0;
  DeviceCounts devices;
  std::vector<Event> events;  // the newest, oldest first
};

// The hub's answer for one rollout to a device's sync.
struct Gate {
  std::string rollout, release;
  bool admitted = false;
  bool rollback = false;
  std::int64_t generation = 0;
  std::string state;
  int step = 0;
  double percent = 0;
  std::string reason;
};

// The answer that acknowledges each id is made by HubApi, before the store is reached.
struct ReportsOutcome {
  int added = 0, duplicates = 0;
  bool verdict_changed = false;  // an outcome arrived for a rollout: worth an early tick
};

enum class Command { pause, resume, promote, abort, retry };
std::string_view command_name(Command command);

class Director {
 public:
  Director(Store& store, Clock clock);

  // The fleet of the hub's newly accepted commit (committed at `commit_time`). Rollouts whose
  // release changed start a new generation (with an event).
  Status set_fleet(std::string commit, std::int64_t commit_time, ota::Fleet fleet);
  const ota::Fleet* fleet() const { return fleet_ ? &*fleet_ : nullptr; }
  const std::string& commit() const { return commit_; }
  std::int64_t commit_time() const { return commit_time_; }

  // One look at every rollout.
  Status tick();
  // Ticks since start (of a loaded fleet), and how long the latest took (for /metrics).
  std::uint64_t tick_count() const { return tick_count_; }
  double last_tick_seconds() const { return last_tick_seconds_; }

  // A device's sync: remember it (labels, commit, targets; last_seen = now) and answer the
  // gates of every rollout that selects it and whose release it can run.
  Expected<std::vector<Gate>> sync(DeviceRecord device);
  // Store each report once and note what it says about the rollouts' releases.
  Expected<ReportsOutcome> record_reports(std::string_view device, const std::vector<Report>& reports);

  // Operator commands (fleet/API.md). Errc::not_found for a rollout the accepted fleet does not
  // have; Errc::conflict (with why) when its state does not allow the command.
  Expected<RolloutStatus> command(std::string_view rollout, Command command, std::string_view by);

  Expected<RolloutStatus> status(std::string_view rollout);
  Expected<std::vector<RolloutStatus>> statuses();

  // Webhook events, as they happen (the hub queues them for sending).
  void set_webhook_listener(std::function<void(const WebhookEvent&)> listener) { webhook_ = std::move(listener); }
  // The hub's own events (a refused fleet commit, ...): stored with rollout "".
  Status record_hub_event(std::string_view kind, std::string_view message);

  // Read what the director keeps of the store (the known devices' labels, each rollout's
  // admissions and verdict facts) again at the next look: after a transaction that wrote them
  // did not commit after all (the group commit of fleet/api.hpp). Its own failed transactions
  // do this by themselves.
  void drop_caches();

  Store& store() { return store_; }
  std::int64_t now() const { return clock_(); }

 private:
  struct Tally;
  // Every known device's labels (a label set is shared by the devices that have it).
  using KnownDevices = std::unordered_map<std::string, std::shared_ptr<const Labels>>;
  Expected<const KnownDevices*> known_devices();
  std::shared_ptr<const Labels> shared_labels(const Labels& labels);
  // A rollout generation's admitted devices and what each reported for its release.
  struct Generation {
    struct Device {
      std::int64_t admitted_at = -1;  // -1: not admitted
      bool reported = false;          // reported anything for the release
      std::string outcome;            // as in VerdictFact
    };
    std::int64_t number = 0;
    std::unordered_map<std::string, Device> devices;  // admitted, or reported for the release
    std::size_t admitted = 0;
  };
  Expected<Generation*> generation(const std::string& rollout, std::int64_t number);
  // Store and keep: an admission (kept from the first time) and a fact (fleet/store.hpp).
  Status admit(Generation& generation, const std::string& rollout, const std::string& device, std::int64_t at,
               int step);
  Status note_fact(const std::string& rollout, std::int64_t generation, const std::string& device, std::int64_t at,
                   const std::string& outcome, const std::string& message);
  Expected<Tally> tally(const ota::Rollout& spec, const RolloutRecord& record, const KnownDevices& devices, bool admit);
  Status tick_one(const ota::Rollout& spec, const KnownDevices& devices);
  Status start_generation(RolloutRecord& record, const ota::Rollout& spec, std::string_view why);
  Status add_event(const RolloutRecord& record, std::string_view kind, std::string_view message,
                   std::optional<double> value = {}, std::optional<double> threshold = {});
  void notify(std::string_view kind, const RolloutRecord& record, const ota::Rollout& spec, std::string_view message,
              double value, double threshold);
  const ota::Rollout* find_rollout(std::string_view name) const;
  Expected<RolloutStatus> make_status(const ota::Rollout& spec, const KnownDevices& devices);

  Store& store_;
  Clock clock_;
  std::optional<ota::Fleet> fleet_;
  std::string commit_;
  std::int64_t commit_time_ = 0;
  std::function<void(const WebhookEvent&)> webhook_;
  // Selected and admitted counts of each rollout at its last tick, for the sync answer's words.
  std::map<std::string, std::pair<int, int>, std::less<>> counts_;
  std::uint64_t tick_count_ = 0;
  double last_tick_seconds_ = 0;
  // What each look needs of the store, kept instead of read (and parsed) at every tick: loaded
  // at the first look, then updated by the director's own writes (it is the only writer of
  // devices, admissions and facts), and dropped when a transaction that wrote them failed.
  std::optional<KnownDevices> known_;
  std::map<Labels, std::shared_ptr<const Labels>> label_sets_;
  std::map<std::string, Generation, std::less<>> generations_;  // by rollout name: its current one
};

// "10", "2.5": a percent as people read it.
std::string percent_text(double percent);
// A percent for JSON: a whole number as an integer (10, not 10.0), others as they are (2.5).
nlohmann::json percent_json(double percent);

}  // namespace eddy::fleet
