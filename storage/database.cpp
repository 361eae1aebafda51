#include "storage/database.hpp"

#include <sqlite3.h>

#include <utility>

namespace eddy::storage {

std::int64_t Row::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

double Row::real(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Row::text(int column) const {
  auto* p = sqlite3_column_text(stmt_, column);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

bool Row::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

namespace {
// Distinct statements kept at most; SQL texts beyond them are compiled for each use.
constexpr std::size_t max_kept_statements = 128;
}  // namespace

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), statements_(std::move(other.statements_)), path_(std::move(other.path_)),
      schema_version_(other.schema_version_) {
  other.statements_.clear();
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    finalize_all();
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    statements_ = std::move(other.statements_);
    other.statements_.clear();
    path_ = std::move(other.path_);
    schema_version_ = other.schema_version_;
  }
  return *this;
}

Database::~Database() {
  finalize_all();
  if (db_) sqlite3_close_v2(db_);
}

void Database::finalize_all() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
}

Error Database::db_error(std::string_view what) const {
  int code = db_ ? sqlite3_errcode(db_) : SQLITE_ERROR;
  std::string message = "database " + path_.string() + ": " + std::string(what) + ": " +
                        (db_ ? sqlite3_errmsg(db_) : "not open");
  if (code == SQLITE_FULL) return Error{Errc::no_space, message + " (the disk is full)"};
  return Error{Errc::database, message};
}

Expected<Database> Database::open(const std::filesystem::path& path, const std::vector<Migration>& migrations) {
  sqlite3* raw = nullptr;
  // NOMUTEX (SQLite's multi-thread mode): a Database is used by one thread at a time (its
  // statement cache has no lock of its own; eddyd serialises its users with a mutex, the hub
  // keeps its store on one thread), so the connection's own mutexes only cost (~7 % of the hub's
  // CPU a report).
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  Database db(raw, path);
  if (rc != SQLITE_OK) return std::unexpected(db.db_error("open"));
  sqlite3_busy_timeout(raw, 5000);
  // WAL: readers (eddy status) never block the writer; synchronous=FULL makes each commit
  // durable before the side effect that follows it.
  for (auto pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (auto st = db.execute(pragma); !st) return std::unexpected(st.error());
  }
  if (auto st = db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                           "applied_at INTEGER NOT NULL)");
      !st)
    return std::unexpected(st.error());
  auto current = db.query_integer("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!current) return std::unexpected(current.error());
  db.schema_version_ = static_cast<int>(current->value_or(0));
  for (const auto& m : migrations) {
    if (m.version <= db.schema_version_) continue;
    auto st = db.transaction([&]() -> Status {
      if (char* err = nullptr; sqlite3_exec(db.db_, std::string(m.sql).c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown";
        sqlite3_free(err);
        return make_error(Errc::database, "database " + path.string() + ": migration " +
                                              std::to_string(m.version) + ": " + msg);
      }
      return db.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))",
                        {static_cast<std::int64_t>(m.version)});
    });
    if (!st) return std::unexpected(st.error());
    db.schema_version_ = m.version;
  }
  return db;
}

namespace {

// SQLITE_STATIC: no copy of the text. The caller's parameters outlive every step of the
// statement, and finish() clears the bindings (or finalizes the statement) before query() returns.
template <class Text>
int bind(sqlite3_stmt* stmt, int idx, const std::variant<std::nullptr_t, std::int64_t, double, Text>& value) {
  return std::visit(
      [&](const auto& v) -> int {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) return sqlite3_bind_null(stmt, idx);
        else if constexpr (std::is_same_v<T, std::int64_t>) return sqlite3_bind_int64(stmt, idx, v);
        else if constexpr (std::is_same_v<T, double>) return sqlite3_bind_double(stmt, idx, v);
        else return sqlite3_bind_text(stmt, idx, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
      },
      value);
}

}  // namespace

template <class Params>
Expected<Database::Prepared> Database::prepare(std::string_view sql, const Params& params) {
  Prepared prepared{nullptr, false};
  auto kept = statements_.find(sql);
  // A kept statement still running (a query made from inside another's row callback) is left
  // alone: this use gets one of its own.
  if (kept != statements_.end() && !sqlite3_stmt_busy(kept->second)) {
    prepared = {kept->second, true};
  } else {
    if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &prepared.stmt, nullptr) != SQLITE_OK)
      return std::unexpected(db_error("prepare `" + std::string(sql) + "`"));
    if (kept == statements_.end() && prepared.stmt && statements_.size() < max_kept_statements) {
      statements_.emplace(std::string(sql), prepared.stmt);
      prepared.kept = true;
    }
  }
  int idx = 0;
  for (const auto& value : params) {
    if (bind(prepared.stmt, ++idx, value) != SQLITE_OK) {
      auto err = db_error("bind");
      finish(prepared);
      return std::unexpected(err);
    }
  }
  return prepared;
}

Status Database::execute(std::string_view sql, const std::vector<Value>& params) {
  return query(sql, params, [](const Row&) {});
}

Status Database::query(std::string_view sql, const std::vector<Value>& params,
                       const std::function<void(const Row&)>& on_row) {
  return run(sql, params, on_row);
}

Status Database::execute_refs(std::string_view sql, std::initializer_list<ValueRef> params) {
  return run(sql, params, [](const Row&) {});
}

template <class Params>
Status Database::run(std::string_view sql, const Params& params, const std::function<void(const Row&)>& on_row) {
  auto prepared = prepare(sql, params);
  if (!prepared) return std::unexpected(prepared.error());
  Row row(prepared->stmt);
  for (;;) {
    int rc = sqlite3_step(prepared->stmt);
    if (rc == SQLITE_ROW) {
      on_row(row);
      continue;
    }
    if (rc == SQLITE_DONE) break;
    auto err = db_error("run `" + std::string(sql.substr(0, 60)) + "`");
    finish(*prepared);
    return std::unexpected(err);
  }
  finish(*prepared);
  return {};
}

void Database::finish(const Prepared& prepared) {
  if (prepared.kept) {
    sqlite3_reset(prepared.stmt);
    sqlite3_clear_bindings(prepared.stmt);
  } else {
    sqlite3_finalize(prepared.stmt);
  }
}

Expected<std::optional<std::string>> Database::query_text(std::string_view sql, const std::vector<Value>& params) {
  std::optional<std::string> out;
  auto st = query(sql, params, [&](const Row& r) {
    if (!out && !r.is_null(0)) out = r.text(0);
  });
  if (!st) return std::unexpected(st.error());
  return out;
}

Expected<std::optional<std::int64_t>> Database::query_integer(std::string_view sql, const std::vector<Value>& params) {
  std::optional<std::int64_t> out;
  auto st = query(sql, params, [&](const Row& r) {
    if (!out && !r.is_null(0)) out = r.integer(0);
  });
  if (!st) return std::unexpected(st.error());
  return out;
}

std::int64_t Database::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }

std::int64_t Database::changes() const { return sqlite3_changes64(db_); }

Status Database::transaction(const std::function<Status()>& body) {
  // Nested calls become savepoints, so a helper that is one transaction on its own can be
  // part of a larger one (commit = transition + installed version).
  const bool outer = transaction_depth_ == 0;
  const std::string savepoint = "eddy_sp" + std::to_string(transaction_depth_);
  if (auto st = execute(outer ? "BEGIN IMMEDIATE" : "SAVEPOINT " + savepoint); !st) return st;
  ++transaction_depth_;
  auto st = body();
  --transaction_depth_;
  auto undo = [&] {
    if (outer) {
      (void)execute("ROLLBACK");
    } else {
      (void)execute("ROLLBACK TO " + savepoint);
      (void)execute("RELEASE " + savepoint);
    }
  };
  if (!st) {
    undo();
    return st;
  }
  if (auto c = execute(outer ? "COMMIT" : "RELEASE " + savepoint); !c) {
    undo();
    return c;
  }
  return {};
}

}  // namespace eddy::storage
