// The device's state store: the update journal (one row per attempt, every transition), probe
// results, operator-facing events, what is installed, releases rejected on this device, and the
// outbox of reports for the hub. Every write is one SQLite transaction, committed before the
// caller's next side effect.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "storage/database.hpp"

namespace eddy::storage {

struct UpdateRecord {
  std::int64_t id = 0;
  std::string commit_id;
  std::string target, release, version, sha256, from_version;  // empty until admitted
  std::string rollout;           // the rollout that assigned the release (empty until admitted)
  std::int64_t generation = 0;   // the hub's generation of that rollout; 0 without a hub
  std::string state;
  std::string outcome;  // empty while in flight
  std::string message;
  std::int64_t started_at = 0, updated_at = 0;
};

// What an attempt installs, filled in when its release is admitted.
struct UpdateSubject {
  std::string target, release, version, sha256;
  std::string from_version;  // the committed version when the attempt started: the rollback target
  std::string rollout;
  std::int64_t generation = 0;
};

struct Rejection {
  std::string reason;
  std::int64_t generation = 0;  // the hub's generation it was rejected under; 0 without a hub
};

// A report waiting in the outbox; its id on the wire is "<device id>:<seq>".
struct OutboxReport {
  std::int64_t seq = 0;
  std::string body;  // the report as JSON (fleet/API.md), without "id"
};

struct InstalledRecord {
  std::string target;
  std::string current_version, current_release;
  std::string previous_version, previous_release;  // empty when there is none
  std::int64_t updated_at = 0;
};

struct HistoryEntry {
  std::int64_t at_us = 0;  // unix time in microseconds
  std::string kind;  // transition | event | probe
  std::int64_t update_id = 0;
  std::string target, release, version;
  std::string from, to;        // transition
  std::string level;           // event
  std::string probe, detail;   // probe
  std::int64_t iteration = 0;
  bool ok = false;
  std::string message;
};

class StateStore {
 public:
  static Expected<StateStore> open(const std::filesystem::path& file);

  // Key/value facts.
  Expected<std::optional<std::string>> get(std::string_view key);
  Status put(std::string_view key, std::string_view value);

  // Begin an attempt in `state` (with the transition idle -> state journaled), for `subject`
  // when it is known already.
  Expected<UpdateRecord> begin_update(std::string_view commit_id, std::string_view state, std::string_view event,
                                      const UpdateSubject& subject = {});
  // Fill in what was admitted.
  Status set_update_release(std::int64_t id, const UpdateSubject& subject);
  Status set_update_release(std::int64_t id, std::string_view target, std::string_view release,
                            std::string_view version, std::string_view sha256, std::string_view from_version);
  // Persist a transition: the row's state and the journal entry, atomically. `outcome` is set
  // when the new state ends the attempt.
  Status transition(std::int64_t id, std::string_view from, std::string_view to, std::string_view event,
                    std::string_view message, std::string_view outcome = {});
  // The attempt that has not finished (outcome empty), if any: what recovery looks at.
  Expected<std::optional<UpdateRecord>> unfinished_update();
  Expected<std::optional<UpdateRecord>> latest_update(std::string_view target);
  Expected<UpdateRecord> update(std::int64_t id);
  // The event of the latest transition of an update (why it is in its state).
  Expected<std::string> last_event(std::int64_t update_id);
  // How many attempts at (target, version) ended with `outcome`.
  Expected<int> count_outcomes(std::string_view target, std::string_view version, std::string_view outcome);

  Status record_probe(std::int64_t update_id, int iteration, std::string_view probe, bool ok,
                      std::string_view detail, std::int64_t duration_ms);
  Status record_event(std::string_view level, std::string_view message);

  Expected<std::optional<InstalledRecord>> installed(std::string_view target);
  Expected<std::vector<InstalledRecord>> all_installed();
  // `version` becomes current; the old current becomes previous (unless it is the same).
  Status set_installed(std::string_view target, std::string_view version, std::string_view release);
  // Rolled back to `version`: it becomes current, `previous` is cleared if it equals it.
  Status set_current_after_rollback(std::string_view target, std::string_view version, std::string_view release);
  Status remove_installed(std::string_view target);

  // `generation`: the hub's generation of the rollout it failed under (0 without a hub).
  Status reject_release(std::string_view target, std::string_view version, std::string_view sha256,
                        std::string_view reason, std::int64_t generation = 0);
  Expected<std::optional<Rejection>> rejection(std::string_view target, std::string_view version,
                                               std::string_view sha256);

  // Journal, events and probe results together, oldest first, the newest `limit` of them.
  Expected<std::vector<HistoryEntry>> history(int limit);

  // The outbox. Once enabled (a hub is configured), every transition, probe result and event
  // recorded above also queues a report in the same transaction. At most `limit` reports wait:
  // beyond that the oldest tenth is dropped, and an event (recorded and queued) says how many.
  void enable_outbox(std::int64_t limit = 10000);
  bool outbox_enabled() const { return outbox_limit_ > 0; }
  // The oldest `max_count` reports up to sequence `last_seq`, oldest first.
  Expected<std::vector<OutboxReport>> outbox_oldest(int max_count,
                                                    std::int64_t last_seq = std::numeric_limits<std::int64_t>::max());
  // The sequence of the newest report waiting (0 when the outbox is empty).
  Expected<std::int64_t> outbox_last_seq();
  // Delete acknowledged reports.
  Status outbox_remove(const std::vector<std::int64_t>& seqs);
  Expected<std::int64_t> outbox_size();

  Database& database() { return db_; }

 private:
  explicit StateStore(Database db) : db_(std::move(db)) {}
  // Queue `report` (inside the caller's transaction) and keep the outbox within its limit.
  Status queue_report(nlohmann::json report);
  Status queue_update_report(std::int64_t update_id, nlohmann::json report);

  Database db_;
  std::int64_t outbox_limit_ = 0;  // 0: no hub, no reports
};

std::int64_t unix_now();     // seconds
std::int64_t unix_now_us();  // microseconds

}  // namespace eddy::storage
