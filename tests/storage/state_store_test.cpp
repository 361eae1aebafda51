#include "storage/state_store.hpp"

#include <gtest/gtest.h>

#include "storage/migrations.hpp"
#include "tests/support/support.hpp"

namespace eddy::storage {
namespace {

using eddy::testing::TempDir;

TEST(StateStore, MigratesAndReopensWithDataIntact) {
  TempDir dir;
  {
    auto store = StateStore::open(dir / "eddy.db");
    ASSERT_TRUE(store) << store.error().message;
    EXPECT_EQ(store->database().schema_version(), static_cast<int>(device_migrations().size()));
    ASSERT_TRUE(store->put("accepted_commit", "abc"));
  }
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store);
  EXPECT_EQ(store->get("accepted_commit")->value_or(""), "abc");
  auto mode = store->database().query_text("PRAGMA journal_mode");
  EXPECT_EQ(mode->value_or(""), "wal");
}

TEST(StateStore, DatabaseFromANewerEddydStillOpens) {
  TempDir dir;
  {
    auto db = Database::open(dir / "eddy.db", device_migrations());
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->execute("CREATE TABLE future_table (x INTEGER)"));
    ASSERT_TRUE(db->execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)"));
  }
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ(store->database().schema_version(), 999);
}

TEST(StateStore, TransitionsAreJournaledAndFinishTheAttempt) {
  TempDir dir;
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store);
  auto u = store->begin_update("c1", "fetched", "fetched");
  ASSERT_TRUE(u);
  ASSERT_TRUE(store->transition(u->id, "fetched", "verified", "verified", "signed by fleet@example.com"));
  ASSERT_TRUE(store->set_update_release(u->id, "app", "app-1.0", "1.0", "aa", ""));
  auto open = store->unfinished_update();
  ASSERT_TRUE(open && *open);
  EXPECT_EQ((*open)->state, "verified");
  EXPECT_EQ((*open)->target, "app");
  ASSERT_TRUE(store->transition(u->id, "verified", "failed", "refused", "nope", "refused"));
  EXPECT_FALSE(*store->unfinished_update());
  auto history = store->history(10);
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].to, "fetched");
  EXPECT_EQ((*history)[2].to, "failed");
  EXPECT_EQ((*history)[2].message, "nope");
}

TEST(StateStore, HistoryInterleavesTransitionsProbesAndEventsInOrder) {
  TempDir dir;
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store);
  auto u = store->begin_update("c1", "probing", "activated");
  ASSERT_TRUE(u);
  ASSERT_TRUE(store->record_probe(u->id, 1, "health", false, "HTTP 500", 3));
  ASSERT_TRUE(store->record_event("warning", "something"));
  ASSERT_TRUE(store->transition(u->id, "probing", "rolling-back", "probes-failed", "1 failed check"));
  auto h = store->history(2);
  ASSERT_TRUE(h);
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[0].kind, "event");
  EXPECT_EQ((*h)[1].kind, "transition");
  auto all = store->history(100);
  EXPECT_EQ((*all)[1].kind, "probe");
  EXPECT_EQ((*all)[1].detail, "HTTP 500");
  EXPECT_FALSE((*all)[1].ok);
}

TEST(StateStore, InstalledKeepsThePreviousVersion) {
  TempDir dir;
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->set_installed("app", "1", "app-1"));
  ASSERT_TRUE(store->set_installed("app", "2", "app-2"));
  auto i = store->installed("app");
  ASSERT_TRUE(i && *i);
  EXPECT_EQ((*i)->current_version, "2");
  EXPECT_EQ((*i)->previous_version, "1");
  ASSERT_TRUE(store->set_installed("app", "2", "app-2"));  // the same again keeps previous
  EXPECT_EQ((*store->installed("app"))->previous_version, "1");
  ASSERT_TRUE(store->set_current_after_rollback("app", "1", "app-1"));
  i = store->installed("app");
  EXPECT_EQ((*i)->current_version, "1");
  EXPECT_EQ((*i)->previous_version, "");
}

TEST(StateStore, RejectedReleasesAreRemembered) {
  TempDir dir;
  auto store = StateStore::open(dir / "eddy.db");
  ASSERT_TRUE(store);
  EXPECT_FALSE(*store->rejection("app", "3", "ff"));
  ASSERT_TRUE(store->reject_release("app", "3", "ff", "probes failed"));
  auto rejected = store->rejection("app", "3", "ff");
  ASSERT_TRUE(rejected && *rejected);
  EXPECT_EQ((*rejected)->reason, "probes failed");
  EXPECT_EQ((*rejected)->generation, 0);
  ASSERT_TRUE(store->reject_release("app", "3", "ff", "rolled back by the hub", 4));
  EXPECT_EQ((*store->rejection("app", "3", "ff"))->generation, 4);
  EXPECT_FALSE(*store->rejection("app", "3", "ee"));
}

TEST(StateStore, UnwritableLocationIsAClearError) {
  auto store = StateStore::open("/nonexistent-dir/eddy.db");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, Errc::database);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/eddy.db"), std::string::npos);
}

}  // namespace
}  // namespace eddy::storage
