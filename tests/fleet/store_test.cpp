// The hub's SQLite store (fleet/store.hpp): migrations, reports stored once per (device, id),
// sticky admissions, verdict facts where the latest outcome decides, events in order.
#include "fleet/store.hpp"

#include <gtest/gtest.h>

#include "tests/support/support.hpp"

namespace eddy::fleet {
namespace {

using eddy::testing::TempDir;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() {
    store_.reset();
    auto s = SqliteStore::open(dir_.path() / "db" / "hub.db");
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(StoreTest, MigrationsRunOnceAndDataSurvivesReopening) {
  EXPECT_EQ(store_->database().schema_version(), hub_migrations().back().version);
  ASSERT_TRUE(store_->put("accepted_commit", "abc"));
  open();
  EXPECT_EQ(store_->database().schema_version(), hub_migrations().back().version);
  EXPECT_EQ(*store_->get("accepted_commit"), "abc");
  auto applied = store_->database().query_integer("SELECT COUNT(*) FROM schema_migrations");
  EXPECT_EQ(**applied, static_cast<std::int64_t>(hub_migrations().size()));
}

TEST_F(StoreTest, AReportIsStoredOncePerDeviceAndId) {
  Report r;
  r.id = "pi-1:7";
  r.time = 100;
  r.kind = "transition";
  r.release = "app-1.0";
  r.outcome = "committed";
  r.probes = {ProbeResult{"health", 2, false, "HTTP 500"}};
  EXPECT_EQ(*store_->add_report("pi-1", r, 200), true);
  r.message = "sent again with other words";
  EXPECT_EQ(*store_->add_report("pi-1", r, 300), false);
  EXPECT_EQ(*store_->add_report("pi-2", r, 300), true);
  auto stored = store_->reports("pi-1");
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].message, "");
  ASSERT_EQ((*stored)[0].probes.size(), 1u);
  EXPECT_EQ((*stored)[0].probes[0].detail, "HTTP 500");
  EXPECT_EQ((*stored)[0].probes[0].iteration, 2);
}

TEST_F(StoreTest, DevicesKeepTheirFirstSighting) {
  DeviceRecord d{"pi-1", {{"site", "berlin"}}, 100, 100, "c1", {{"app", TargetState{"1.0", "app-1.0", "committed"}}}};
  ASSERT_TRUE(store_->save_device(d));
  d.first_seen = 0;
  d.last_seen = 500;
  d.labels = {{"site", "paris"}};
  ASSERT_TRUE(store_->save_device(d));
  auto back = store_->device("pi-1");
  ASSERT_TRUE(*back);
  EXPECT_EQ((*back)->first_seen, 100);
  EXPECT_EQ((*back)->last_seen, 500);
  EXPECT_EQ((*back)->labels.at("site"), "paris");
  EXPECT_EQ((*back)->targets.at("app"), (TargetState{"1.0", "app-1.0", "committed"}));
  EXPECT_EQ(*store_->device_count(), 1);
  EXPECT_FALSE(*store_->device("pi-2"));
}

TEST_F(StoreTest, AdmissionIsKeptFromTheFirstTime) {
  ASSERT_TRUE(store_->admit("app", 1, Admission{"pi-1", 100, 0}));
  ASSERT_TRUE(store_->admit("app", 1, Admission{"pi-1", 900, 3}));
  auto a = store_->admission("app", 1, "pi-1");
  ASSERT_TRUE(*a);
  EXPECT_EQ((*a)->admitted_at, 100);
  EXPECT_EQ((*a)->step, 0);
  EXPECT_FALSE(*store_->admission("app", 2, "pi-1"));
  EXPECT_EQ(store_->admissions("app", 1)->size(), 1u);
}

TEST_F(StoreTest, TheLatestOutcomeDecidesAndProgressDoesNotEraseIt) {
  ASSERT_TRUE(store_->record_fact("app", 1, "pi-1", 100, "", "downloading"));
  ASSERT_TRUE(store_->record_fact("app", 1, "pi-1", 200, "committed", "ok"));
  ASSERT_TRUE(store_->record_fact("app", 1, "pi-1", 300, "", "a later event"));
  auto facts = store_->facts("app", 1);
  ASSERT_EQ(facts->size(), 1u);
  EXPECT_EQ((*facts)[0].outcome, "committed");
  EXPECT_EQ((*facts)[0].outcome_at, 200);
  EXPECT_EQ((*facts)[0].first_at, 100);
  EXPECT_EQ((*facts)[0].last_at, 300);
  ASSERT_TRUE(store_->record_fact("app", 1, "pi-1", 400, "rolled-back", "probe failed"));
  EXPECT_EQ((*store_->facts("app", 1))[0].outcome, "rolled-back");
  EXPECT_TRUE(store_->facts("app", 2)->empty());
}

TEST_F(StoreTest, RolloutsRoundTripWithTheirVerdict) {
  RolloutRecord r{"app", "app-1.0", "c1", 2, "halted", 1, 100, 50, Verdict{120, "halt", 0.25, 0.05, "too many"}};
  ASSERT_TRUE(store_->save_rollout(r));
  auto back = store_->rollout("app");
  ASSERT_TRUE(*back);
  EXPECT_EQ((*back)->generation, 2);
  EXPECT_EQ((*back)->state, "halted");
  EXPECT_DOUBLE_EQ((*back)->last_verdict.value, 0.25);
  EXPECT_DOUBLE_EQ((*back)->last_verdict.threshold, 0.05);
  EXPECT_EQ((*back)->last_verdict.message, "too many");
  EXPECT_EQ(store_->rollouts()->size(), 1u);
}

TEST_F(StoreTest, EventsComeOldestFirstFilteredByTimeAndRollout) {
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(store_->add_event(Event{0, i % 2 ? "a" : "b", 1, 100 + i, "step", "e" + std::to_string(i),
                                        i == 0 ? std::optional<double>(0.5) : std::nullopt, std::nullopt}));
  auto all = store_->events(0, nullptr, 100);
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].message, "e0");
  EXPECT_EQ((*all)[0].value, 0.5);
  EXPECT_EQ((*all)[1].value, std::nullopt);
  std::string a = "a";
  auto only_a = store_->events(0, &a, 100);
  ASSERT_EQ(only_a->size(), 2u);
  EXPECT_EQ((*only_a)[1].message, "e3");
  auto late = store_->events(103, nullptr, 100);
  ASSERT_EQ(late->size(), 2u);
  EXPECT_EQ((*late)[0].message, "e3");
  auto newest = store_->events(0, nullptr, 2);
  ASSERT_EQ(newest->size(), 2u);
  EXPECT_EQ((*newest)[0].message, "e3");
  EXPECT_EQ((*newest)[1].message, "e4");
}

TEST_F(StoreTest, ATransactionThatFailsLeavesNothing) {
  auto st = store_->transaction([&]() -> Status {
    if (auto s = store_->put("accepted_commit", "half"); !s) return s;
    return make_error(Errc::io, "disk trouble");
  });
  ASSERT_FALSE(st);
  EXPECT_FALSE(*store_->get("accepted_commit"));
}

// The store keeps the rollouts' rows it read or wrote: a row written by a transaction that failed,
// whole or in a nested part, is not what it answers afterwards; a new store reads the same.
TEST_F(StoreTest, ARolloutRowWrittenByAFailedTransactionIsNotReadBack) {
  RolloutRecord r{"app", "app-1.0", "c1", 1, "progressing", 0, 100, 100, Verdict{}};
  ASSERT_TRUE(store_->save_rollout(r));
  ASSERT_EQ((*store_->rollout("app"))->step, 0);
  auto widened = r;
  widened.step = 2;
  auto st = store_->transaction([&]() -> Status {
    if (auto s = store_->save_rollout(widened); !s) return s;
    EXPECT_EQ((*store_->rollout("app"))->step, 2);  // inside, its own write is seen
    return make_error(Errc::io, "disk trouble");
  });
  ASSERT_FALSE(st);
  EXPECT_EQ((*store_->rollout("app"))->step, 0);

  // A nested transaction that fails inside one that commits.
  auto outer = store_->transaction([&]() -> Status {
    auto inner = store_->transaction([&]() -> Status {
      if (auto s = store_->save_rollout(widened); !s) return s;
      return make_error(Errc::io, "disk trouble");
    });
    EXPECT_FALSE(inner);
    return {};
  });
  ASSERT_TRUE(outer) << outer.error().message;
  EXPECT_EQ((*store_->rollout("app"))->step, 0);

  ASSERT_TRUE(store_->save_rollout(widened));
  EXPECT_EQ((*store_->rollout("app"))->step, 2);
  open();
  EXPECT_EQ((*store_->rollout("app"))->step, 2);
}

// A hub database of schema 1 (reports WITHOUT ROWID) moves its reports to the table of
// migration 2 (by arrival, with a unique index on device and id): none lost, each still once.
TEST(HubMigration, ReportsOfSchemaOneAreKeptAndStillCountedOnce) {
  TempDir dir;
  {
    std::vector<storage::Migration> first(hub_migrations().begin(), hub_migrations().begin() + 1);
    auto db = storage::Database::open(dir / "hub.db", first);
    ASSERT_TRUE(db) << db.error().message;
    ASSERT_EQ(db->schema_version(), 1);
    for (const char* id : {"pi-1:2", "pi-1:1", "pi-2:1"})
      ASSERT_TRUE(db->execute(
          "INSERT INTO reports (device, id, received_at, time, kind, target, rollout, release, version, fleet_commit, "
          "generation, from_state, to_state, outcome, level, message, probes) VALUES (substr(?1, 1, 4), ?1, 10, 5, "
          "'transition', 'app', 'app', 'app-1.0', '1.0', 'c1', 1, 'probing', 'committed', 'committed', '', '', "
          "'[{\"name\":\"health\",\"iteration\":1,\"ok\":true,\"detail\":\"HTTP 200\"}]')",
          {std::string(id)}));
  }
  auto store = SqliteStore::open(dir / "hub.db");
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->database().schema_version(), hub_migrations().back().version);
  auto pi1 = (*store)->reports("pi-1");
  ASSERT_TRUE(pi1) << pi1.error().message;
  ASSERT_EQ(pi1->size(), 2u);
  EXPECT_EQ((*pi1)[0].id, "pi-1:1");
  EXPECT_EQ((*pi1)[1].id, "pi-1:2");
  ASSERT_EQ((*pi1)[0].probes.size(), 1u);
  EXPECT_EQ((*pi1)[0].probes[0].detail, "HTTP 200");
  Report again;
  again.id = "pi-1:2";
  again.kind = "transition";
  EXPECT_EQ(*(*store)->add_report("pi-1", again, 20), false);  // stored before the migration: counted once
  again.id = "pi-1:3";
  EXPECT_EQ(*(*store)->add_report("pi-1", again, 20), true);
  EXPECT_EQ(**(*store)->database().query_integer("SELECT COUNT(*) FROM reports"), 4);
}

}  // namespace
}  // namespace eddy::fleet
