// The report outbox of the state store: every journal entry becomes a report in the same
// transaction, ids never repeat, the outbox is bounded.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "storage/migrations.hpp"
#include "storage/state_store.hpp"
#include "tests/support/support.hpp"

namespace eddy::storage {
namespace {

using eddy::testing::TempDir;
using nlohmann::json;

std::vector<json> bodies(StateStore& store) {
  std::vector<json> out;
  auto reports = store.outbox_oldest(100000);
  EXPECT_TRUE(reports) << reports.error().message;
  for (const auto& r : *reports) out.push_back(json::parse(r.body));
  return out;
}

// A fresh store in a temp folder, its outbox enabled unless the test says otherwise.
class Outbox : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen(std::int64_t limit = 10000) {
    store.reset();
    auto opened = StateStore::open(dir / "eddy.db");
    ASSERT_TRUE(opened) << opened.error().message;
    store.emplace(std::move(*opened));
    if (limit > 0) store->enable_outbox(limit);
  }
  TempDir dir;
  std::optional<StateStore> store;
};

TEST_F(Outbox, NothingIsQueuedWithoutAHub) {
  reopen(0);
  auto u = store->begin_update("c1", "fetched", "fetched");
  ASSERT_TRUE(u);
  ASSERT_TRUE(store->transition(u->id, "fetched", "verified", "verified", "signed"));
  ASSERT_TRUE(store->record_event("info", "hello"));
  EXPECT_EQ(store->outbox_size().value_or(-1), 0);
}

TEST_F(Outbox, EveryTransitionProbeAndEventBecomesAReportInOrder) {
  UpdateSubject subject{"app", "app-1.1", "1.1", "ab", "1.0", "app-rollout", 3};
  auto u = store->begin_update("c0ffee", "admitted", "admitted", subject);
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->rollout, "app-rollout");
  EXPECT_EQ(u->generation, 3);
  ASSERT_TRUE(store->transition(u->id, "admitted", "downloading", "download-started", ""));
  ASSERT_TRUE(store->record_probe(u->id, 2, "health", false, "HTTP 500", 12));
  ASSERT_TRUE(store->record_event("warning", "something else"));
  ASSERT_TRUE(store->transition(u->id, "probing", "rolled-back", "rolled-back", "back on 1.0", "rolled-back"));

  auto reports = store->outbox_oldest(100);
  ASSERT_TRUE(reports);
  ASSERT_EQ(reports->size(), 5u);
  for (std::size_t i = 1; i < reports->size(); ++i) EXPECT_LT((*reports)[i - 1].seq, (*reports)[i].seq);

  auto b = bodies(*store);
  // Every field of the API's report is present in each (empty where it does not apply).
  for (const auto& r : b) {
    for (const char* key : {"time", "kind", "level", "target", "rollout", "release", "version", "commit", "generation",
                            "from", "to", "outcome", "message", "probes"})
      EXPECT_TRUE(r.contains(key)) << key << " in " << r.dump();
    EXPECT_FALSE(r.contains("id"));  // given when sent: "<device>:<seq>"
  }
  EXPECT_EQ(b[0]["kind"], "transition");
  EXPECT_EQ(b[0]["from"], "idle");
  EXPECT_EQ(b[0]["to"], "admitted");
  EXPECT_EQ(b[0]["release"], "app-1.1");
  EXPECT_EQ(b[0]["rollout"], "app-rollout");
  EXPECT_EQ(b[0]["generation"], 3);
  EXPECT_EQ(b[0]["commit"], "c0ffee");
  EXPECT_EQ(b[1]["to"], "downloading");
  EXPECT_EQ(b[1]["message"], "download-started");  // the event when the transition has no message
  EXPECT_EQ(b[2]["kind"], "event");
  EXPECT_EQ(b[2]["level"], "warning");
  EXPECT_EQ(b[2]["target"], "app");
  ASSERT_EQ(b[2]["probes"].size(), 1u);
  EXPECT_EQ(b[2]["probes"][0], (json{{"name", "health"}, {"iteration", 2}, {"ok", false}, {"detail", "HTTP 500"}}));
  EXPECT_EQ(b[3]["kind"], "event");
  EXPECT_EQ(b[3]["message"], "something else");
  EXPECT_EQ(b[3]["target"], "");
  EXPECT_EQ(b[4]["outcome"], "rolled-back");
  EXPECT_EQ(b[4]["message"], "back on 1.0");
}

// A report and what it reports commit together or not at all: a failing outbox write undoes
// the transition, and an undone transaction takes its report with it.
TEST_F(Outbox, ReportIsWrittenInTheTransactionOfWhatItReports) {
  auto u = store->begin_update("c1", "admitted", "admitted", UpdateSubject{"app", "app-2", "2", "cd", "1", "r", 1});
  ASSERT_TRUE(u);
  const auto before = store->outbox_size().value_or(-1);

  // The outbox refuses writes (as a full disk would): the transition is not persisted either.
  ASSERT_TRUE(store->database().execute(
      "CREATE TRIGGER outbox_refuses BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox refuses'); END"));
  auto st = store->transition(u->id, "admitted", "downloading", "download-started", "");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::database);
  EXPECT_EQ(store->update(u->id)->state, "admitted");
  EXPECT_EQ(store->history(100)->size(), 1u);
  ASSERT_FALSE(store->record_probe(u->id, 1, "health", true, "", 1));
  ASSERT_FALSE(store->record_event("info", "x"));
  EXPECT_EQ(store->history(100)->size(), 1u);
  ASSERT_TRUE(store->database().execute("DROP TRIGGER outbox_refuses"));

  // A transaction that fails after the transition rolls back its report too.
  auto undone = store->database().transaction([&]() -> Status {
    if (auto t = store->transition(u->id, "admitted", "downloading", "download-started", ""); !t) return t;
    return make_error(Errc::io, "the side effect failed");
  });
  ASSERT_FALSE(undone);
  EXPECT_EQ(store->outbox_size().value_or(-1), before);
  EXPECT_EQ(store->update(u->id)->state, "admitted");

  ASSERT_TRUE(store->transition(u->id, "admitted", "downloading", "download-started", ""));
  EXPECT_EQ(store->outbox_size().value_or(-1), before + 1);
}

TEST(OutboxSequence, NumbersNeverRepeatAndStartFromTheClock) {
  TempDir dir;
  const std::int64_t created_ms = unix_now() * 1000;
  std::int64_t last = 0;
  {
    auto store = StateStore::open(dir / "eddy.db");
    ASSERT_TRUE(store);
    store->enable_outbox();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(store->record_event("info", "e" + std::to_string(i)));
    auto reports = store->outbox_oldest(10);
    ASSERT_EQ(reports->size(), 3u);
    // A wiped data folder starts a new database: its numbers begin after the old ones (seeded
    // from the clock in milliseconds), so the hub does not take new reports for seen ones.
    EXPECT_GE(reports->front().seq, created_ms);
    EXPECT_LE(reports->front().seq, (unix_now() + 1) * 1000 + 1);
    last = reports->back().seq;
    EXPECT_EQ(store->outbox_last_seq().value_or(0), last);
    std::vector<std::int64_t> all;
    for (const auto& r : *reports) all.push_back(r.seq);
    ASSERT_TRUE(store->outbox_remove(all));
    EXPECT_EQ(store->outbox_size().value_or(-1), 0);
    EXPECT_EQ(store->outbox_last_seq().value_or(-1), 0);
  }
  // After every report was acknowledged and deleted, and after a restart, numbers go on.
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store);
  store->enable_outbox();
  ASSERT_TRUE(store->record_event("info", "after restart"));
  auto reports = store->outbox_oldest(10);
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ(reports->front().seq, last + 1);
}

TEST_F(Outbox, AcknowledgedReportsAreRemovedOthersStayInOrder) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->record_event("info", std::to_string(i)));
  auto reports = store->outbox_oldest(10);
  ASSERT_TRUE(store->outbox_remove({(*reports)[1].seq, (*reports)[3].seq, 999}));
  auto left = bodies(*store);
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[0]["message"], "0");
  EXPECT_EQ(left[1]["message"], "2");
  EXPECT_EQ(left[2]["message"], "4");
  // Up to a sequence number: what was waiting when a flush began.
  auto upto = store->outbox_oldest(10, (*reports)[2].seq);
  ASSERT_TRUE(upto);
  EXPECT_EQ(upto->size(), 2u);
}

TEST_F(Outbox, FullOutboxDropsTheOldestTenthAndSaysSo) {
  reopen(100);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store->record_event("info", "report " + std::to_string(i)));
  EXPECT_EQ(store->outbox_size().value_or(-1), 100);
  auto first_seq = store->outbox_oldest(1)->front().seq;

  ASSERT_TRUE(store->record_event("info", "report 100"));
  // 101 > 100: the oldest 11 went (the excess and a tenth), one notice came in.
  auto b = bodies(*store);
  ASSERT_EQ(b.size(), 91u);
  EXPECT_EQ(b.front()["message"], "report 11");
  EXPECT_EQ(b[b.size() - 2]["message"], "report 100");
  const auto& notice = b.back();
  EXPECT_EQ(notice["kind"], "event");
  EXPECT_EQ(notice["level"], "warning");
  const std::string message = notice["message"];
  EXPECT_NE(message.find("dropped the 11 oldest"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(first_seq) + " to " + std::to_string(first_seq + 10)), std::string::npos)
      << message;
  // And in the device's own history.
  auto history = store->history(5);
  ASSERT_TRUE(history);
  EXPECT_EQ(history->back().message, message);

  // The next reports fit without dropping again (no notice per report).
  for (int i = 101; i < 110; ++i) ASSERT_TRUE(store->record_event("info", "report " + std::to_string(i)));
  EXPECT_EQ(store->outbox_size().value_or(-1), 100);
  ASSERT_TRUE(store->record_event("info", "report 110"));
  EXPECT_EQ(store->outbox_size().value_or(-1), 91);
}

TEST_F(Outbox, ReportsStaySmallAndValidWhateverTheyCarry) {
  auto u = store->begin_update("c1", "probing", "activated", UpdateSubject{"app", "app-2", "2", "cd", "1", "r", 1});
  ASSERT_TRUE(u);
  // Invalid UTF-8 from an app's output, and a very long detail.
  ASSERT_TRUE(store->record_probe(u->id, 1, "selftest", false, "bad \xff\xfe bytes " + std::string(100000, 'x'), 5));
  auto b = bodies(*store);
  ASSERT_EQ(b.size(), 2u);
  const std::string detail = b[1]["probes"][0]["detail"];
  EXPECT_LT(detail.size(), 5000u);
  EXPECT_NE(detail.find("bad \xEF\xBF\xBD"), std::string::npos);  // U+FFFD
  EXPECT_LT(store->outbox_oldest(10)->back().body.size(), 10000u);
}

// A database written by the previous eddyd (schema 1) gains the outbox and keeps its data.
TEST(OutboxMigration, MigratesADatabaseOfSchemaOne) {
  TempDir dir;
  {
    std::vector<Migration> first(device_migrations().begin(), device_migrations().begin() + 1);
    auto db = Database::open(dir / "eddy.db", first);
    ASSERT_TRUE(db);
    ASSERT_EQ(db->schema_version(), 1);
    ASSERT_TRUE(db->execute("INSERT INTO rejected_releases (target, version, sha256, reason, at) "
                            "VALUES ('app', '3', 'ff', 'probes failed', 1)"));
    ASSERT_TRUE(db->execute("INSERT INTO updates (commit_id, state, started_at, updated_at) VALUES ('c', 'idle', 1, 1)"));
  }
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_GE(store->database().schema_version(), 2);
  auto rejected = store->rejection("app", "3", "ff");
  ASSERT_TRUE(rejected && *rejected);
  EXPECT_EQ((*rejected)->generation, 0);
  auto u = store->update(1);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->generation, 0);
  EXPECT_EQ(u->rollout, "");
  store->enable_outbox();
  ASSERT_TRUE(store->record_event("info", "x"));
  EXPECT_GE(store->outbox_oldest(1)->front().seq, 1000);
}

}  // namespace
}  // namespace eddy::storage
