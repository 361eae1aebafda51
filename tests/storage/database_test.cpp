// storage::Database keeps each SQL text's compiled statement and runs it again with new
// parameters: a kept statement must behave exactly as a fresh one (its parameters, its error,
// a query of the same text from inside its own row callback, a move of the database).
#include "storage/database.hpp"

#include <gtest/gtest.h>

#include "tests/support/support.hpp"

namespace eddy::storage {
namespace {

using eddy::testing::TempDir;

const std::vector<Migration> kSchema{{1, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);"}};

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::open(dir_ / "t.db", kSchema);
    ASSERT_TRUE(db) << db.error().message;
    db_.emplace(std::move(*db));
  }
  TempDir dir_;
  std::optional<Database> db_;
};

TEST_F(DatabaseTest, AKeptStatementTakesNewParametersEachTime) {
  for (std::int64_t k = 1; k <= 50; ++k)
    ASSERT_TRUE(db_->execute("INSERT INTO t (k, v) VALUES (?, ?)", {k, "v" + std::to_string(k)}));
  for (std::int64_t k = 1; k <= 50; ++k)
    EXPECT_EQ(db_->query_text("SELECT v FROM t WHERE k = ?", {k})->value_or(""), "v" + std::to_string(k));
  // A parameter left out this time is NULL, not the previous call's value.
  EXPECT_FALSE(db_->query_text("SELECT v FROM t WHERE k = ?")->has_value());
}

TEST_F(DatabaseTest, AFailedRunLeavesTheStatementUsable) {
  ASSERT_TRUE(db_->execute("INSERT INTO t (k, v) VALUES (?, ?)", {std::int64_t{1}, std::string("a")}));
  auto twice = db_->execute("INSERT INTO t (k, v) VALUES (?, ?)", {std::int64_t{1}, std::string("b")});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, Errc::database);
  EXPECT_TRUE(testing::contains(twice.error().message, "UNIQUE")) << twice.error().message;
  EXPECT_TRUE(db_->execute("INSERT INTO t (k, v) VALUES (?, ?)", {std::int64_t{2}, std::string("b")}));
  EXPECT_EQ(db_->query_integer("SELECT COUNT(*) FROM t")->value_or(0), 2);
}

TEST_F(DatabaseTest, TheSameQueryFromInsideItsOwnRowCallbackRunsOnItsOwn) {
  for (std::int64_t k = 1; k <= 3; ++k) ASSERT_TRUE(db_->execute("INSERT INTO t (k, v) VALUES (?, 'x')", {k}));
  const std::string sql = "SELECT k FROM t WHERE k >= ? ORDER BY k";
  std::vector<std::int64_t> outer;
  std::vector<std::size_t> inner_counts;
  auto st = db_->query(sql, {std::int64_t{1}}, [&](const Row& row) {
    outer.push_back(row.integer(0));
    std::size_t n = 0;
    auto inner = db_->query(sql, {row.integer(0)}, [&](const Row&) { ++n; });
    EXPECT_TRUE(inner) << inner.error().message;
    inner_counts.push_back(n);
  });
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(outer, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(inner_counts, (std::vector<std::size_t>{3, 2, 1}));
}

TEST_F(DatabaseTest, KeptStatementsMoveWithTheDatabaseAndTransactionsStillNest) {
  ASSERT_TRUE(db_->execute("INSERT INTO t (k, v) VALUES (1, 'a')"));
  Database moved = std::move(*db_);
  db_.reset();
  EXPECT_EQ(moved.query_integer("SELECT COUNT(*) FROM t")->value_or(0), 1);
  auto st = moved.transaction([&]() -> Status {
    if (auto s = moved.execute("INSERT INTO t (k, v) VALUES (2, 'b')"); !s) return s;
    // A nested transaction that fails undoes only its own writes.
    (void)moved.transaction([&]() -> Status {
      if (auto s = moved.execute("INSERT INTO t (k, v) VALUES (3, 'c')"); !s) return s;
      return make_error(Errc::invalid_argument, "undo");
    });
    return {};
  });
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(moved.query_integer("SELECT COUNT(*) FROM t")->value_or(0), 2);
  EXPECT_FALSE(moved.query_text("SELECT v FROM t WHERE k = 3")->has_value());
}

}  // namespace
}  // namespace eddy::storage
