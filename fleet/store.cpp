#include "fleet/store.hpp"

#include <nlohmann/json.hpp>

#include "platform/fs.hpp"

namespace eddy::fleet {

namespace {

using storage::Row;
using storage::Value;
using json = nlohmann::json;

std::string labels_json(const std::map<std::string, std::string>& labels) { return json(labels).dump(); }

std::string targets_json(const std::map<std::string, TargetState>& targets) {
  json out = json::object();
  for (const auto& [name, t] : targets) out[name] = {{"version", t.version}, {"release", t.release}, {"state", t.state}};
  return out.dump();
}

// The columns were written by this file from validated values; a row that does not parse is
// read as empty rather than failing every listing.
std::map<std::string, std::string> parse_labels(const std::string& text) {
  std::map<std::string, std::string> out;
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items())
    if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

std::map<std::string, TargetState> parse_targets(const std::string& text) {
  std::map<std::string, TargetState> out;
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_object()) continue;
    out[k] = TargetState{v.value("version", ""), v.value("release", ""), v.value("state", "")};
  }
  return out;
}

std::vector<ProbeResult> parse_probes(const std::string& text) {
  std::vector<ProbeResult> out;
  auto j = json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& p : j) {
    if (!p.is_object()) continue;
    out.push_back(ProbeResult{p.value("name", ""), p.value("iteration", std::int64_t{0}), p.value("ok", false),
                              p.value("detail", "")});
  }
  return out;
}

constexpr std::string_view rollout_columns =
    "name, release, fleet_commit, generation, state, step, step_started_at, generation_started_at, verdict_at, "
    "verdict_decision, verdict_value, verdict_threshold, verdict_message";

RolloutRecord rollout_from(const Row& r) {
  RolloutRecord out;
  out.name = r.text(0);
  out.release = r.text(1);
  out.commit = r.text(2);
  out.generation = r.integer(3);
  out.state = r.text(4);
  out.step = static_cast<int>(r.integer(5));
  out.step_started_at = r.integer(6);
  out.generation_started_at = r.integer(7);
  out.last_verdict = Verdict{r.integer(8), r.text(9), r.real(10), r.real(11), r.text(12)};
  return out;
}

}  // namespace

std::string probes_json(const std::vector<ProbeResult>& probes) {
  json out = json::array();
  for (const auto& p : probes)
    out.push_back({{"name", p.name}, {"iteration", p.iteration}, {"ok", p.ok}, {"detail", p.detail}});
  return out.dump();
}

Expected<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& file) {
  if (file.has_parent_path()) {
    if (auto st = fs::create_directories(file.parent_path(), 0750); !st) return std::unexpected(st.error());
  }
  auto db = storage::Database::open(file, hub_migrations());
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(*db)));
}

SqliteStore::SqliteStore(storage::Database db) : db_(std::move(db)) {}

// The syncer goes first: what it still has to sync is synced before the database closes.
SqliteStore::~SqliteStore() { wal_sync_.reset(); }

Status SqliteStore::sync_in_background(EventLoop& loop) {
  // synchronous=NORMAL: commits write their frames to the WAL without waiting for the disk
  // (SQLite stays consistent: it syncs before each checkpoint); WalSync makes them durable.
  if (auto st = db_.execute("PRAGMA synchronous=NORMAL"); !st) return st;
  // A checkpoint (run by the commit that finds the WAL past this many pages, on the store's
  // thread) syncs the WAL and the database file: every 8,192 pages (32 MiB) rather than SQLite's
  // 1,000, so the store's thread waits for those syncs an eighth as often, and a page written by
  // many groups in between is copied once (bench/RESULTS.md, "Hub": 13,104 → 19,072 reports/s).
  if (auto st = db_.execute("PRAGMA wal_autocheckpoint=8192"); !st) return st;
  wal_sync_ = std::make_unique<WalSync>(loop, db_.path().string() + "-wal");
  return {};
}

Status SqliteStore::run_transaction(const std::function<Status()>& body) {
  ++depth_;
  auto st = db_.transaction(body);
  --depth_;
  if (!st) rollout_rows_.clear();
  return st;
}

Status SqliteStore::transaction(const std::function<Status()>& body) {
  auto st = run_transaction(body);
  // Durable before it returns, as with synchronous=FULL.
  if (st && depth_ == 0 && wal_sync_) return wal_sync_->sync_now();
  return st;
}

Status SqliteStore::transaction_then_durable(const std::function<Status()>& body,
                                             std::function<void(Status)> on_durable) {
  if (!wal_sync_ || depth_ > 0) return Store::transaction_then_durable(body, std::move(on_durable));
  if (auto st = run_transaction(body); !st) return st;
  wal_sync_->after_commit(std::move(on_durable));
  return {};
}

Expected<std::optional<std::string>> SqliteStore::get(std::string_view key) {
  return db_.query_text("SELECT value FROM hub_facts WHERE key = ?", {std::string(key)});
}

Status SqliteStore::put(std::string_view key, std::string_view value) {
  return db_.execute("INSERT INTO hub_facts (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     {std::string(key), std::string(value)});
}

Status SqliteStore::save_device(const DeviceRecord& d) {
  return db_.execute(
      "INSERT INTO devices (id, labels, first_seen, last_seen, fleet_commit, targets) VALUES (?, ?, ?, ?, ?, ?) "
      "ON CONFLICT (id) DO UPDATE SET labels = excluded.labels, last_seen = excluded.last_seen, "
      "fleet_commit = excluded.fleet_commit, targets = excluded.targets",
      {d.id, labels_json(d.labels), d.first_seen ? d.first_seen : d.last_seen, d.last_seen, d.commit,
       targets_json(d.targets)});
}

Expected<std::vector<DeviceRecord>> SqliteStore::query_devices(std::string_view where,
                                                               const std::vector<Value>& params) {
  std::vector<DeviceRecord> out;
  auto st = db_.query("SELECT id, labels, first_seen, last_seen, fleet_commit, targets FROM devices " +
                          std::string(where) + " ORDER BY id",
                      params, [&](const Row& r) {
                        out.push_back(DeviceRecord{r.text(0), parse_labels(r.text(1)), r.integer(2), r.integer(3),
                                                   r.text(4), parse_targets(r.text(5))});
                      });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<std::optional<DeviceRecord>> SqliteStore::device(std::string_view id) {
  auto found = query_devices("WHERE id = ?", {std::string(id)});
  if (!found) return std::unexpected(found.error());
  if (found->empty()) return std::optional<DeviceRecord>{};
  return std::optional<DeviceRecord>(std::move(found->front()));
}

Expected<std::vector<DeviceRecord>> SqliteStore::devices() { return query_devices("", {}); }

Expected<std::int64_t> SqliteStore::device_count() {
  auto n = db_.query_integer("SELECT COUNT(*) FROM devices");
  if (!n) return std::unexpected(n.error());
  return n->value_or(0);
}

Expected<bool> SqliteStore::add_report(std::string_view device, const Report& r, std::int64_t received_at) {
  const std::string made = r.probes_json.empty() ? probes_json(r.probes) : std::string();
  const std::string& probes = r.probes_json.empty() ? made : r.probes_json;
  auto added = db_.execute_refs(
      "INSERT INTO reports (device, id, received_at, time, kind, target, rollout, release, version, fleet_commit, "
      "generation, from_state, to_state, outcome, level, message, probes) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device, id) DO NOTHING",
      {device, r.id, received_at, r.time, r.kind, r.target, r.rollout, r.release, r.version, r.commit, r.generation,
       r.from, r.to, r.outcome, r.level, r.message, probes});
  if (!added) return std::unexpected(added.error());
  // A row only when the report was new, none when it was there already. (Not RETURNING, which
  // gathers its rows in a temporary table of their own: more work than the insert, a report.)
  return db_.changes() == 1;
}

Expected<std::vector<Report>> SqliteStore::reports(std::string_view device) {
  std::vector<Report> out;
  auto st = db_.query(
      "SELECT id, time, kind, target, rollout, release, version, fleet_commit, generation, from_state, to_state, "
      "outcome, level, message, probes FROM reports WHERE device = ? ORDER BY received_at, time, id",
      {std::string(device)}, [&](const Row& r) {
        out.push_back(Report{r.text(0), r.integer(1), r.text(2), r.text(3), r.text(4), r.text(5), r.text(6),
                             r.text(7), r.integer(8), r.text(9), r.text(10), r.text(11), r.text(12), r.text(13),
                             parse_probes(r.text(14)), r.text(14)});
      });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<std::optional<RolloutRecord>> SqliteStore::rollout(std::string_view name) {
  if (auto kept = rollout_rows_.find(name); kept != rollout_rows_.end()) return std::optional<RolloutRecord>(kept->second);
  std::optional<RolloutRecord> out;
  auto st = db_.query("SELECT " + std::string(rollout_columns) + " FROM rollouts WHERE name = ?", {std::string(name)},
                      [&](const Row& r) { out = rollout_from(r); });
  if (!st) return std::unexpected(st.error());
  if (out) rollout_rows_.insert_or_assign(out->name, *out);
  return out;
}

Expected<std::vector<RolloutRecord>> SqliteStore::rollouts() {
  std::vector<RolloutRecord> out;
  auto st = db_.query("SELECT " + std::string(rollout_columns) + " FROM rollouts ORDER BY name", {},
                      [&](const Row& r) { out.push_back(rollout_from(r)); });
  if (!st) return std::unexpected(st.error());
  return out;
}

Status SqliteStore::save_rollout(const RolloutRecord& r) {
  auto st = db_.execute("INSERT OR REPLACE INTO rollouts (" + std::string(rollout_columns) +
                         ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     {r.name, r.release, r.commit, r.generation, r.state, std::int64_t{r.step}, r.step_started_at,
                      r.generation_started_at, r.last_verdict.at, r.last_verdict.decision, r.last_verdict.value,
                      r.last_verdict.threshold, r.last_verdict.message});
  if (st) rollout_rows_.insert_or_assign(r.name, r);
  else rollout_rows_.erase(r.name);
  return st;
}

Status SqliteStore::admit(std::string_view rollout, std::int64_t generation, const Admission& a) {
  return db_.execute(
      "INSERT INTO admissions (rollout, generation, device, admitted_at, step) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT (rollout, generation, device) DO NOTHING",
      {std::string(rollout), generation, a.device, a.admitted_at, std::int64_t{a.step}});
}

Expected<std::optional<Admission>> SqliteStore::admission(std::string_view rollout, std::int64_t generation,
                                                          std::string_view device) {
  std::optional<Admission> out;
  auto st = db_.query(
      "SELECT device, admitted_at, step FROM admissions WHERE rollout = ? AND generation = ? AND device = ?",
      {std::string(rollout), generation, std::string(device)},
      [&](const Row& r) { out = Admission{r.text(0), r.integer(1), static_cast<int>(r.integer(2))}; });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<std::vector<Admission>> SqliteStore::admissions(std::string_view rollout, std::int64_t generation) {
  std::vector<Admission> out;
  auto st = db_.query(
      "SELECT device, admitted_at, step FROM admissions WHERE rollout = ? AND generation = ? ORDER BY device",
      {std::string(rollout), generation},
      [&](const Row& r) { out.push_back(Admission{r.text(0), r.integer(1), static_cast<int>(r.integer(2))}); });
  if (!st) return std::unexpected(st.error());
  return out;
}

Status SqliteStore::record_fact(std::string_view rollout, std::int64_t generation, std::string_view device,
                                std::int64_t at, std::string_view outcome, std::string_view message) {
  const bool has_outcome = !outcome.empty();
  return db_.execute_refs(
      "INSERT INTO verdict_facts (rollout, generation, device, first_at, last_at, outcome, outcome_at, message) "
      "VALUES (?1, ?2, ?3, ?4, ?4, ?5, CASE WHEN ?5 = '' THEN 0 ELSE ?4 END, ?6) "
      "ON CONFLICT (rollout, generation, device) DO UPDATE SET last_at = MAX(last_at, excluded.last_at), "
      "outcome = CASE WHEN ?7 THEN excluded.outcome ELSE outcome END, "
      "outcome_at = CASE WHEN ?7 THEN excluded.outcome_at ELSE outcome_at END, "
      "message = CASE WHEN ?7 OR outcome = '' THEN excluded.message ELSE message END",
      {rollout, generation, device, at, outcome, message, std::int64_t{has_outcome ? 1 : 0}});
}

Expected<std::vector<VerdictFact>> SqliteStore::facts(std::string_view rollout, std::int64_t generation) {
  std::vector<VerdictFact> out;
  auto st = db_.query(
      "SELECT device, first_at, last_at, outcome, outcome_at, message FROM verdict_facts "
      "WHERE rollout = ? AND generation = ? ORDER BY device",
      {std::string(rollout), generation}, [&](const Row& r) {
        out.push_back(VerdictFact{r.text(0), r.integer(1), r.integer(2), r.text(3), r.integer(4), r.text(5)});
      });
  if (!st) return std::unexpected(st.error());
  return out;
}

Status SqliteStore::add_event(const Event& e) {
  auto optional = [](const std::optional<double>& v) -> Value {
    if (v) return *v;
    return nullptr;
  };
  return db_.execute(
      "INSERT INTO events (rollout, generation, at, kind, message, value, threshold) VALUES (?, ?, ?, ?, ?, ?, ?)",
      {e.rollout, e.generation, e.at, e.kind, e.message, optional(e.value), optional(e.threshold)});
}

Expected<std::vector<Event>> SqliteStore::events(std::int64_t since, const std::string* rollout, std::size_t limit) {
  std::vector<Event> out;
  std::string sql = "SELECT id, rollout, generation, at, kind, message, value, threshold FROM events WHERE at >= ?";
  std::vector<Value> params{since};
  if (rollout) {
    sql += " AND rollout = ?";
    params.emplace_back(*rollout);
  }
  // The newest `limit`, returned oldest first.
  sql = "SELECT * FROM (" + sql + " ORDER BY id DESC LIMIT ?) ORDER BY id";
  params.emplace_back(static_cast<std::int64_t>(limit));
  auto st = db_.query(sql, params, [&](const Row& r) {
    Event e{r.integer(0), r.text(1), r.integer(2), r.integer(3), r.text(4), r.text(5), std::nullopt, std::nullopt};
    if (!r.is_null(6)) e.value = r.real(6);
    if (!r.is_null(7)) e.threshold = r.real(7);
    out.push_back(std::move(e));
  });
  if (!st) return std::unexpected(st.error());
  return out;
}

}  // namespace eddy::fleet
