// The hub's store: devices, their reports (each once), the rollouts' state, admissions, the
// facts verdicts are made of, and the event timeline. An interface, so that a fleet that
// outgrows one server can move to PostgreSQL; SqliteStore is the embedded default. One thread
// uses a Store at a time (the hub's event loop).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/store_wal_sync.hpp"
#include "platform/error.hpp"
#include "platform/event_loop.hpp"
#include "storage/database.hpp"

namespace eddy::fleet {

// The hub database's schema, oldest first (fleet/migrations/NNN_*.sql).
const std::vector<storage::Migration>& hub_migrations();

struct TargetState {
  std::string version, release, state;
  bool operator==(const TargetState&) const = default;
};

struct DeviceRecord {
  std::string id;
  std::map<std::string, std::string> labels;
  std::int64_t first_seen = 0, last_seen = 0;
  std::string commit;  // the fleet commit the device accepted
  std::map<std::string, TargetState> targets;
};

struct ProbeResult {
  std::string name;
  std::int64_t iteration = 0;
  bool ok = false;
  std::string detail;
};

// A device report (fleet/API.md, "POST /v1/devices/{id}/reports").
struct Report {
  std::string id;
  std::int64_t time = 0;
  std::string kind;  // transition | event
  std::string target, rollout, release, version, commit;
  std::int64_t generation = 0;
  std::string from, to, outcome, level, message;
  std::vector<ProbeResult> probes;
  // `probes` as the store keeps them (probes_json), when made before the report reaches the
  // store's thread (HubApi makes it on the server's); empty: the store makes it.
  std::string probes_json;
};

// Probe results as the store keeps them: a JSON array of {name, iteration, ok, detail}.
std::string probes_json(const std::vector<ProbeResult>& probes);

struct Verdict {
  std::int64_t at = 0;
  std::string decision;  // wait | widen | halt | complete
  double value = 0, threshold = 0;
  std::string message;
};

struct RolloutRecord {
  std::string name, release, commit;
  std::int64_t generation = 0;
  std::string state;  // progressing | paused | halted | rolled-back | complete
  int step = 0;       // index into the rollout's steps
  std::int64_t step_started_at = 0, generation_started_at = 0;
  Verdict last_verdict;
};

struct Admission {
  std::string device;
  std::int64_t admitted_at = 0;
  int step = 0;
};

// What a device reported for a rollout's release in one generation.
struct VerdictFact {
  std::string device;
  std::int64_t first_at = 0, last_at = 0;
  std::string outcome;  // "" (in progress), committed, rolled-back, failed
  std::int64_t outcome_at = 0;
  std::string message;
};

struct Event {
  std::int64_t id = 0;
  std::string rollout;  // "" for the hub's own events
  std::int64_t generation = 0;
  std::int64_t at = 0;
  std::string kind, message;
  std::optional<double> value, threshold;
};

class Store {
 public:
  virtual ~Store() = default;

  // Run `body` atomically: everything it wrote, or nothing.
  virtual Status transaction(const std::function<Status()>& body) = 0;
  // The same, but the store may return once the transaction is committed and before it is on
  // disk: `on_durable` is called (later, on the store's thread) when it is, or with the error
  // that kept it from being. Not called when the transaction failed (the error is returned).
  // By default the commit waits for the disk and `on_durable` is called at once.
  virtual Status transaction_then_durable(const std::function<Status()>& body,
                                          std::function<void(Status)> on_durable) {
    auto st = transaction(body);
    if (st) on_durable({});
    return st;
  }

  virtual Expected<std::optional<std::string>> get(std::string_view key) = 0;
  virtual Status put(std::string_view key, std::string_view value) = 0;

  // Insert or replace (first_seen is kept from the first time).
  virtual Status save_device(const DeviceRecord& device) = 0;
  virtual Expected<std::optional<DeviceRecord>> device(std::string_view id) = 0;
  virtual Expected<std::vector<DeviceRecord>> devices() = 0;
  virtual Expected<std::int64_t> device_count() = 0;

  // Store a report unless (device, report.id) is already stored; true when it was new.
  virtual Expected<bool> add_report(std::string_view device, const Report& report, std::int64_t received_at) = 0;
  virtual Expected<std::vector<Report>> reports(std::string_view device) = 0;

  virtual Expected<std::optional<RolloutRecord>> rollout(std::string_view name) = 0;
  virtual Expected<std::vector<RolloutRecord>> rollouts() = 0;
  virtual Status save_rollout(const RolloutRecord& rollout) = 0;

  // Admit once: a device already admitted to the generation keeps its first admission.
  virtual Status admit(std::string_view rollout, std::int64_t generation, const Admission& admission) = 0;
  virtual Expected<std::optional<Admission>> admission(std::string_view rollout, std::int64_t generation,
                                                       std::string_view device) = 0;
  virtual Expected<std::vector<Admission>> admissions(std::string_view rollout, std::int64_t generation) = 0;

  // Note that `device` reported for the rollout's release at `at`; a non-empty outcome
  // replaces the one recorded before (the latest report decides).
  virtual Status record_fact(std::string_view rollout, std::int64_t generation, std::string_view device,
                             std::int64_t at, std::string_view outcome, std::string_view message) = 0;
  virtual Expected<std::vector<VerdictFact>> facts(std::string_view rollout, std::int64_t generation) = 0;

  virtual Status add_event(const Event& event) = 0;
  // Events at or after `since`, oldest first; only those of `rollout` unless it is null.
  virtual Expected<std::vector<Event>> events(std::int64_t since, const std::string* rollout,
                                              std::size_t limit) = 0;
};

// The embedded default: SQLite (WAL, durable commits) at `file`, migrated on open.
class SqliteStore final : public Store {
 public:
  static Expected<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& file);
  ~SqliteStore() override;

  // From now on transaction_then_durable() commits without waiting for the disk and syncs the
  // write-ahead log on a thread of its own, calling back on `loop` (fleet/store_wal_sync.hpp);
  // transaction() still returns only once its commit is on disk. Without it, both wait for the
  // disk within the commit (synchronous=FULL).
  Status sync_in_background(EventLoop& loop);

  Status transaction(const std::function<Status()>& body) override;
  Status transaction_then_durable(const std::function<Status()>& body,
                                  std::function<void(Status)> on_durable) override;
  Expected<std::optional<std::string>> get(std::string_view key) override;
  Status put(std::string_view key, std::string_view value) override;
  Status save_device(const DeviceRecord& device) override;
  Expected<std::optional<DeviceRecord>> device(std::string_view id) override;
  Expected<std::vector<DeviceRecord>> devices() override;
  Expected<std::int64_t> device_count() override;
  Expected<bool> add_report(std::string_view device, const Report& report, std::int64_t received_at) override;
  Expected<std::vector<Report>> reports(std::string_view device) override;
  Expected<std::optional<RolloutRecord>> rollout(std::string_view name) override;
  Expected<std::vector<RolloutRecord>> rollouts() override;
  Status save_rollout(const RolloutRecord& rollout) override;
  Status admit(std::string_view rollout, std::int64_t generation, const Admission& admission) override;
  Expected<std::optional<Admission>> admission(std::string_view rollout, std::int64_t generation,
                                               std::string_view device) override;
  Expected<std::vector<Admission>> admissions(std::string_view rollout, std::int64_t generation) override;
  Status record_fact(std::string_view rollout, std::int64_t generation, std::string_view device, std::int64_t at,
                     std::string_view outcome, std::string_view message) override;
  Expected<std::vector<VerdictFact>> facts(std::string_view rollout, std::int64_t generation) override;
  Status add_event(const Event& event) override;
  Expected<std::vector<Event>> events(std::int64_t since, const std::string* rollout, std::size_t limit) override;

  storage::Database& database() { return db_; }

 private:
  explicit SqliteStore(storage::Database db);
  Expected<std::vector<DeviceRecord>> query_devices(std::string_view where, const std::vector<storage::Value>& params);
  Status run_transaction(const std::function<Status()>& body);
  storage::Database db_;
  // The rollouts' rows as last read or written here (every report batch reads its rollout's):
  // the hub's store is the only writer of hub.db. Dropped when a transaction fails, as what it
  // wrote is then not stored.
  std::map<std::string, RolloutRecord, std::less<>> rollout_rows_;
  std::unique_ptr<WalSync> wal_sync_;
  int depth_ = 0;  // transactions open (nested ones are savepoints of the outer one)
};

}  // namespace eddy::fleet
