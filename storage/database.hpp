// A SQLite database in WAL mode with numbered migrations compiled in. Small typed helpers for
// statements keep SQL at the call sites readable and errors as values. Statements are compiled
// once per SQL text and kept (reset and bound again for the next call): compiling them at every
// call cost eddy-hub more CPU than running them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "platform/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace eddy::storage {

using Value = std::variant<std::nullptr_t, std::int64_t, double, std::string>;
// A parameter that refers to the caller's text instead of holding a copy of it, for statements
// on a hot path (eddy-hub runs two for every report): the text must outlive the call.
using ValueRef = std::variant<std::nullptr_t, std::int64_t, double, std::string_view>;

struct Migration {
  int version;
  std::string_view sql;
};

class Row {
 public:
  explicit Row(sqlite3_stmt* stmt) : stmt_(stmt) {}
  std::int64_t integer(int column) const;
  std::string text(int column) const;
  double real(int column) const;
  bool is_null(int column) const;

 private:
  sqlite3_stmt* stmt_;
};

// Not thread-safe: one thread at a time uses a Database (the caller serialises; the connection is
// opened without SQLite's own mutexes).
class Database {
 public:
  // Open (creating if needed) and migrate to the newest version in `migrations`. A database
  // written by a newer eddyd (a higher version than known) still opens: migrations only add.
  static Expected<Database> open(const std::filesystem::path& path, const std::vector<Migration>& migrations);

  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  Status execute(std::string_view sql, const std::vector<Value>& params = {});
  // Run a query and call on_row for each row.
  Status query(std::string_view sql, const std::vector<Value>& params,
               const std::function<void(const Row&)>& on_row);
  Expected<std::optional<std::string>> query_text(std::string_view sql, const std::vector<Value>& params = {});
  Expected<std::optional<std::int64_t>> query_integer(std::string_view sql, const std::vector<Value>& params = {});
  // execute() with parameters that refer to the caller's text (no copy of any of it is made).
  Status execute_refs(std::string_view sql, std::initializer_list<ValueRef> params);
  std::int64_t last_insert_id() const;
  // Rows inserted, updated or deleted by the latest INSERT, UPDATE or DELETE.
  std::int64_t changes() const;

  // Run `body` inside BEGIN IMMEDIATE … COMMIT (a SAVEPOINT when nested); roll back if it
  // fails. Only one thread writes (the update worker).
  Status transaction(const std::function<Status()>& body);

  int schema_version() const { return schema_version_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  Database(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  // A statement ready to step; `kept` when it is the cached one for its SQL text.
  struct Prepared {
    sqlite3_stmt* stmt;
    bool kept;
  };
  template <class Params>
  Expected<Prepared> prepare(std::string_view sql, const Params& params);
  template <class Params>
  Status run(std::string_view sql, const Params& params, const std::function<void(const Row&)>& on_row);
  // Done with a statement from prepare(): reset a kept one, finalize one made for a single use.
  static void finish(const Prepared& prepared);
  void finalize_all();
  Error db_error(std::string_view what) const;

  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };

  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*, TextHash, std::equal_to<>> statements_;
  std::filesystem::path path_;
  int schema_version_ = 0;
  int transaction_depth_ = 0;
};

}  // namespace eddy::storage
