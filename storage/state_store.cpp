#include "storage/state_store.hpp"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "storage/migrations.hpp"

namespace eddy::storage {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
std::string s(std::string_view v) { return std::string(v); }
Value text_or_null(std::string_view v) { return v.empty() ? Value(nullptr) : Value(std::string(v)); }

constexpr const char* kUpdateColumns =
    "id, commit_id, COALESCE(target,''), COALESCE(release,''), COALESCE(version,''), COALESCE(sha256,''), "
    "COALESCE(from_version,''), state, COALESCE(outcome,''), COALESCE(message,''), started_at, updated_at, "
    "COALESCE(rollout,''), generation";

UpdateRecord update_from_row(const Row& r) {
  UpdateRecord u;
  u.id = r.integer(0);
  u.commit_id = r.text(1);
  u.target = r.text(2);
  u.release = r.text(3);
  u.version = r.text(4);
  u.sha256 = r.text(5);
  u.from_version = r.text(6);
  u.state = r.text(7);
  u.outcome = r.text(8);
  u.message = r.text(9);
  u.started_at = r.integer(10);
  u.updated_at = r.integer(11);
  u.rollout = r.text(12);
  u.generation = r.integer(13);
  return u;
}

// Text fields of a report are cut to this many bytes: a report stays small whatever a probe or
// a hook printed, so a batch of 100 stays far below the hub's 1 MiB limit.
constexpr std::size_t kMaxReportText = 4096;

std::string clipped(std::string_view text) {
  if (text.size() <= kMaxReportText) return std::string(text);
  return std::string(text.substr(0, kMaxReportText)) + "...";
}

// A report as fleet/API.md has it, every field present (empty when it does not apply).
nlohmann::json blank_report(std::string_view kind, std::string_view level, std::string_view message) {
  return nlohmann::json{{"time", unix_now()}, {"kind", kind},       {"level", level},
                        {"target", ""},       {"rollout", ""},      {"release", ""},
                        {"version", ""},      {"commit", ""},       {"generation", 0},
                        {"from", ""},         {"to", ""},           {"outcome", ""},
                        {"message", clipped(message)}, {"probes", nlohmann::json::array()}};
}
}  // namespace

Expected<StateStore> StateStore::open(const std::filesystem::path& file) {
  auto db = Database::open(file, device_migrations());
  if (!db) return std::unexpected(db.error());
  return StateStore(std::move(*db));
}

Expected<std::optional<std::string>> StateStore::get(std::string_view key) {
  return db_.query_text("SELECT value FROM kv WHERE key = ?", {s(key)});
}

Status StateStore::put(std::string_view key, std::string_view value) {
  return db_.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     {s(key), s(value)});
}

Expected<UpdateRecord> StateStore::begin_update(std::string_view commit_id, std::string_view state,
                                                std::string_view event, const UpdateSubject& subject) {
  std::int64_t now = unix_now();
  std::int64_t id = 0;
  auto st = db_.transaction([&]() -> Status {
    if (auto e = db_.execute("INSERT INTO updates (commit_id, state, started_at, updated_at) VALUES (?, ?, ?, ?)",
                             {s(commit_id), s(state), now, now});
        !e)
      return e;
    id = db_.last_insert_id();
    if (!subject.target.empty()) {
      if (auto e = set_update_release(id, subject); !e) return e;
    }
    if (auto e = db_.execute(
            "INSERT INTO transitions (update_id, at, from_state, to_state, event) VALUES (?, ?, 'idle', ?, ?)",
            {id, unix_now_us(), s(state), s(event)});
        !e)
      return e;
    auto report = blank_report("transition", "info", event);
    report["from"] = "idle";
    report["to"] = state;
    return queue_update_report(id, std::move(report));
  });
  if (!st) return std::unexpected(st.error());
  return update(id);
}

Status StateStore::set_update_release(std::int64_t id, const UpdateSubject& subject) {
  return db_.execute(
      "UPDATE updates SET target = ?, release = ?, version = ?, sha256 = ?, from_version = ?, rollout = ?, "
      "generation = ? WHERE id = ?",
      {s(subject.target), s(subject.release), s(subject.version), s(subject.sha256), text_or_null(subject.from_version),
       text_or_null(subject.rollout), subject.generation, id});
}

Status StateStore::set_update_release(std::int64_t id, std::string_view target, std::string_view release,
                                      std::string_view version, std::string_view sha256,
                                      std::string_view from_version) {
  return set_update_release(id, UpdateSubject{s(target), s(release), s(version), s(sha256), s(from_version), {}, 0});
}

Status StateStore::transition(std::int64_t id, std::string_view from, std::string_view to, std::string_view event,
                              std::string_view message, std::string_view outcome) {
  std::int64_t now = unix_now();
  return db_.transaction([&]() -> Status {
    if (auto e = db_.execute(
            "UPDATE updates SET state = ?, updated_at = ?, message = COALESCE(?, message), "
            "outcome = COALESCE(?, outcome) WHERE id = ?",
            {s(to), now, text_or_null(message), text_or_null(outcome), id});
        !e)
      return e;
    if (auto e = db_.execute(
            "INSERT INTO transitions (update_id, at, from_state, to_state, event, message) VALUES (?, ?, ?, ?, ?, ?)",
            {id, unix_now_us(), s(from), s(to), s(event), text_or_null(message)});
        !e)
      return e;
    const bool bad = outcome == "rolled-back" || outcome == "failed" || outcome == "interrupted";
    auto report = blank_report("transition", bad ? "warning" : "info", message.empty() ? event : message);
    report["from"] = from;
    report["to"] = to;
    report["outcome"] = outcome;
    return queue_update_report(id, std::move(report));
  });
}

Expected<std::optional<UpdateRecord>> StateStore::unfinished_update() {
  std::optional<UpdateRecord> out;
  auto st = db_.query(std::string("SELECT ") + kUpdateColumns +
                          " FROM updates WHERE outcome IS NULL ORDER BY id DESC LIMIT 1",
                      {}, [&](const Row& r) { out = update_from_row(r); });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<std::optional<UpdateRecord>> StateStore::latest_update(std::string_view target) {
  std::optional<UpdateRecord> out;
  auto st = db_.query(std::string("SELECT ") + kUpdateColumns +
                          " FROM updates WHERE target = ? ORDER BY id DESC LIMIT 1",
                      {s(target)}, [&](const Row& r) { out = update_from_row(r); });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<UpdateRecord> StateStore::update(std::int64_t id) {
  std::optional<UpdateRecord> out;
  auto st = db_.query(std::string("SELECT ") + kUpdateColumns + " FROM updates WHERE id = ?", {id},
                      [&](const Row& r) { out = update_from_row(r); });
  if (!st) return std::unexpected(st.error());
  if (!out) return make_error(Errc::not_found, "update " + std::to_string(id) + " is not in the database");
  return *out;
}

Expected<std::string> StateStore::last_event(std::int64_t update_id) {
  auto e = db_.query_text("SELECT event FROM transitions WHERE update_id = ? ORDER BY id DESC LIMIT 1", {update_id});
  if (!e) return std::unexpected(e.error());
  return e->value_or("");
}

Expected<int> StateStore::count_outcomes(std::string_view target, std::string_view version,
                                         std::string_view outcome) {
  auto n = db_.query_integer("SELECT COUNT(*) FROM updates WHERE target = ? AND version = ? AND outcome = ?",
                             {s(target), s(version), s(outcome)});
  if (!n) return std::unexpected(n.error());
  return static_cast<int>(n->value_or(0));
}

Status StateStore::record_probe(std::int64_t update_id, int iteration, std::string_view probe, bool ok,
                                std::string_view detail, std::int64_t duration_ms) {
  return db_.transaction([&]() -> Status {
    if (auto e = db_.execute("INSERT INTO probe_results (update_id, at, iteration, probe, ok, detail, duration_ms) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             {update_id, unix_now_us(), static_cast<std::int64_t>(iteration), s(probe),
                              static_cast<std::int64_t>(ok ? 1 : 0), s(detail), duration_ms});
        !e)
      return e;
    // A probe result travels as an event carrying it (the API's `probes`: the results since
    // the previous report of the attempt, here exactly this one).
    auto report = blank_report("event", ok ? "info" : "warning",
                               "probe " + s(probe) + " iteration " + std::to_string(iteration) +
                                   (ok ? ": passed" : ": failed") + (detail.empty() ? "" : ": " + s(detail)));
    report["probes"].push_back(
        {{"name", probe}, {"iteration", iteration}, {"ok", ok}, {"detail", clipped(detail)}});
    return queue_update_report(update_id, std::move(report));
  });
}

Status StateStore::record_event(std::string_view level, std::string_view message) {
  return db_.transaction([&]() -> Status {
    if (auto e = db_.execute("INSERT INTO events (at, level, message) VALUES (?, ?, ?)",
                             {unix_now_us(), s(level), s(message)});
        !e)
      return e;
    return queue_report(blank_report("event", level, message));
  });
}

namespace {
InstalledRecord installed_from_row(const Row& r) {
  InstalledRecord i;
  i.target = r.text(0);
  i.current_version = r.text(1);
  i.current_release = r.text(2);
  i.previous_version = r.text(3);
  i.previous_release = r.text(4);
  i.updated_at = r.integer(5);
  return i;
}
constexpr const char* kInstalledColumns =
    "target, current_version, current_release, COALESCE(previous_version,''), COALESCE(previous_release,''), "
    "updated_at";
}  // namespace

Expected<std::optional<InstalledRecord>> StateStore::installed(std::string_view target) {
  std::optional<InstalledRecord> out;
  auto st = db_.query(std::string("SELECT ") + kInstalledColumns + " FROM installed WHERE target = ?", {s(target)},
                      [&](const Row& r) { out = installed_from_row(r); });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<std::vector<InstalledRecord>> StateStore::all_installed() {
  std::vector<InstalledRecord> out;
  auto st = db_.query(std::string("SELECT ") + kInstalledColumns + " FROM installed ORDER BY target", {},
                      [&](const Row& r) { out.push_back(installed_from_row(r)); });
  if (!st) return std::unexpected(st.error());
  return out;
}

Status StateStore::set_installed(std::string_view target, std::string_view version, std::string_view release) {
  return db_.execute(
      "INSERT INTO installed (target, current_version, current_release, updated_at) VALUES (?, ?, ?, ?) "
      "ON CONFLICT(target) DO UPDATE SET "
      "previous_version = CASE WHEN installed.current_version = excluded.current_version "
      "  THEN installed.previous_version ELSE installed.current_version END, "
      "previous_release = CASE WHEN installed.current_version = excluded.current_version "
      "  THEN installed.previous_release ELSE installed.current_release END, "
      "current_version = excluded.current_version, current_release = excluded.current_release, "
      "updated_at = excluded.updated_at",
      {s(target), s(version), s(release), unix_now()});
}

Status StateStore::set_current_after_rollback(std::string_view target, std::string_view version,
                                              std::string_view release) {
  return db_.execute(
      "INSERT INTO installed (target, current_version, current_release, updated_at) VALUES (?, ?, ?, ?) "
      "ON CONFLICT(target) DO UPDATE SET "
      "previous_version = CASE WHEN installed.previous_version = excluded.current_version "
      "  THEN NULL ELSE installed.previous_version END, "
      "previous_release = CASE WHEN installed.previous_version = excluded.current_version "
      "  THEN NULL ELSE installed.previous_release END, "
      "current_version = excluded.current_version, current_release = excluded.current_release, "
      "updated_at = excluded.updated_at",
      {s(target), s(version), s(release), unix_now()});
}

Status StateStore::remove_installed(std::string_view target) {
  return db_.execute("DELETE FROM installed WHERE target = ?", {s(target)});
}

Status StateStore::reject_release(std::string_view target, std::string_view version, std::string_view sha256,
                                  std::string_view reason, std::int64_t generation) {
  return db_.execute(
      "INSERT INTO rejected_releases (target, version, sha256, reason, at, generation) VALUES (?, ?, ?, ?, ?, ?) "
      "ON CONFLICT DO UPDATE SET reason = excluded.reason, at = excluded.at, generation = excluded.generation",
      {s(target), s(version), s(sha256), s(reason), unix_now(), generation});
}

Expected<std::optional<Rejection>> StateStore::rejection(std::string_view target, std::string_view version,
                                                         std::string_view sha256) {
  std::optional<Rejection> out;
  auto st = db_.query("SELECT reason, generation FROM rejected_releases WHERE target = ? AND version = ? AND sha256 = ?",
                      {s(target), s(version), s(sha256)},
                      [&](const Row& r) { out = Rejection{r.text(0), r.integer(1)}; });
  if (!st) return std::unexpected(st.error());
  return out;
}

// ---------------------------------------------------------------------------------------------
// The outbox

void StateStore::enable_outbox(std::int64_t limit) { outbox_limit_ = std::max<std::int64_t>(limit, 10); }

Status StateStore::queue_update_report(std::int64_t update_id, nlohmann::json report) {
  if (!outbox_enabled()) return {};
  auto u = update(update_id);
  if (!u) return std::unexpected(u.error());
  report["target"] = u->target;
  report["rollout"] = u->rollout;
  report["release"] = u->release;
  report["version"] = u->version;
  report["commit"] = u->commit_id;
  report["generation"] = u->generation;
  return queue_report(std::move(report));
}

Status StateStore::queue_report(nlohmann::json report) {
  if (!outbox_enabled()) return {};
  // Invalid UTF-8 (a probe's or a hook's output) becomes U+FFFD rather than an exception.
  auto body = report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (auto e = db_.execute("INSERT INTO outbox (at, body) VALUES (?, ?)", {unix_now(), std::move(body)}); !e) return e;
  // The span of sequence numbers bounds the count (MIN is an index lookup, COUNT a scan): count
  // only when the span could be over the limit.
  const std::int64_t newest = db_.last_insert_id();
  auto oldest = db_.query_integer("SELECT MIN(seq) FROM outbox");
  if (!oldest) return std::unexpected(oldest.error());
  if (newest - oldest->value_or(newest) + 1 <= outbox_limit_) return {};
  auto count = outbox_size();
  if (!count) return std::unexpected(count.error());
  if (*count <= outbox_limit_) return {};
  // Full: drop the oldest tenth at once (not one a report, which would fill the outbox with
  // notices), and say so both here and to the hub.
  const std::int64_t drop = *count - outbox_limit_ + std::max<std::int64_t>(1, outbox_limit_ / 10);
  std::optional<std::int64_t> first, last;
  auto st = db_.query("SELECT seq FROM outbox ORDER BY seq LIMIT ?", {drop}, [&](const Row& r) {
    if (!first) first = r.integer(0);
    last = r.integer(0);
  });
  if (!st) return st;
  if (!last) return {};
  if (auto e = db_.execute("DELETE FROM outbox WHERE seq <= ?", {*last}); !e) return e;
  std::string message = "the report outbox was full (" + std::to_string(outbox_limit_) +
                        " reports while the hub could not be reached): dropped the " + std::to_string(drop) +
                        " oldest, sequence " + std::to_string(*first) + " to " + std::to_string(*last);
  if (auto e = db_.execute("INSERT INTO events (at, level, message) VALUES (?, 'warning', ?)", {unix_now_us(), message});
      !e)
    return e;
  auto notice = blank_report("event", "warning", message).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return db_.execute("INSERT INTO outbox (at, body) VALUES (?, ?)", {unix_now(), std::move(notice)});
}

Expected<std::vector<OutboxReport>> StateStore::outbox_oldest(int max_count, std::int64_t last_seq) {
  std::vector<OutboxReport> out;
  auto st = db_.query("SELECT seq, body FROM outbox WHERE seq <= ? ORDER BY seq LIMIT ?",
                      {last_seq, static_cast<std::int64_t>(max_count)},
                      [&](const Row& r) { out.push_back(OutboxReport{r.integer(0), r.text(1)}); });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<std::int64_t> StateStore::outbox_last_seq() {
  auto n = db_.query_integer("SELECT COALESCE(MAX(seq), 0) FROM outbox");
  if (!n) return std::unexpected(n.error());
  return n->value_or(0);
}

Status StateStore::outbox_remove(const std::vector<std::int64_t>& seqs) {
  return db_.transaction([&]() -> Status {
    for (auto seq : seqs) {
      if (auto e = db_.execute("DELETE FROM outbox WHERE seq = ?", {seq}); !e) return e;
    }
    return {};
  });
}

Expected<std::int64_t> StateStore::outbox_size() {
  auto n = db_.query_integer("SELECT COUNT(*) FROM outbox");
  if (!n) return std::unexpected(n.error());
  return n->value_or(0);
}

Expected<std::vector<HistoryEntry>> StateStore::history(int limit) {
  std::vector<HistoryEntry> out;
  // One ordered stream of the three tables; `seq` breaks ties within a second in insert order.
  const char* sql =
      "SELECT * FROM ("
      " SELECT t.at AS at, 'transition' AS kind, t.update_id AS update_id, COALESCE(u.target,''),"
      "  COALESCE(u.release,''), COALESCE(u.version,''), t.from_state, t.to_state, '', '', '', 0, 0,"
      "  COALESCE(t.message,''), t.id * 3 AS seq"
      " FROM transitions t JOIN updates u ON u.id = t.update_id"
      " UNION ALL"
      " SELECT e.at, 'event', 0, '', '', '', '', '', e.level, '', '', 0, 0, e.message, e.id * 3 + 1"
      " FROM events e"
      " UNION ALL"
      " SELECT p.at, 'probe', p.update_id, COALESCE(u.target,''), COALESCE(u.release,''),"
      "  COALESCE(u.version,''), '', '', '', p.probe, COALESCE(p.detail,''), p.iteration, p.ok, '', p.id * 3 + 2"
      " FROM probe_results p JOIN updates u ON u.id = p.update_id"
      ") ORDER BY at DESC, seq DESC LIMIT ?";
  auto st = db_.query(sql, {static_cast<std::int64_t>(limit)}, [&](const Row& r) {
    HistoryEntry h;
    h.at_us = r.integer(0);
    h.kind = r.text(1);
    h.update_id = r.integer(2);
    h.target = r.text(3);
    h.release = r.text(4);
    h.version = r.text(5);
    h.from = r.text(6);
    h.to = r.text(7);
    h.level = r.text(8);
    h.probe = r.text(9);
    h.detail = r.text(10);
    h.iteration = r.integer(11);
    h.ok = r.integer(12) != 0;
    h.message = r.text(13);
    out.push_back(std::move(h));
  });
  if (!st) return std::unexpected(st.error());
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace eddy::storage
