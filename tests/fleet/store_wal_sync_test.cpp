// The store's disk syncs off the event loop (fleet/store_wal_sync.hpp): a commit made with
// transaction_then_durable() is reported durable on the loop after the write-ahead log was
// synced, a sync that cannot be made is an error naming the file (so nothing is acknowledged),
// transaction() still returns durable, and a failed transaction calls nobody back.
#include "fleet/store_wal_sync.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "fleet/store.hpp"
#include "tests/support/loop_thread.hpp"
#include "tests/support/support.hpp"

namespace eddy::fleet {
namespace {

using eddy::testing::LoopThread;
using eddy::testing::TempDir;

TEST(WalSyncTest, CallsBackOnTheLoopOnceTheFileIsSynced) {
  TempDir dir;
  eddy::testing::write_file(dir / "hub.db-wal", "frames");
  LoopThread loop;
  std::atomic<int> called{0}, on_loop{0}, ok{0};
  {
    WalSync sync(loop.loop(), dir / "hub.db-wal");
    for (int i = 0; i < 5; ++i) {
      sync.after_commit([&](Status st) {
        ++called;
        on_loop += loop.loop().in_loop_thread();
        ok += st.has_value();
      });
    }
    EXPECT_TRUE(sync.sync_now());
    ASSERT_TRUE(eddy::testing::wait_until([&] { return called == 5; }));
  }
  EXPECT_EQ(on_loop, 5);
  EXPECT_EQ(ok, 5);
}

TEST(WalSyncTest, ALogThatCannotBeSyncedIsAnErrorNamingIt) {
  TempDir dir;
  LoopThread loop;
  std::promise<Status> result;
  WalSync sync(loop.loop(), dir / "gone.db-wal");
  sync.after_commit([&](Status st) { result.set_value(st); });
  auto st = result.get_future().get();
  ASSERT_FALSE(st);
  EXPECT_TRUE(eddy::testing::contains(st.error().message, "gone.db-wal")) << st.error().message;
  EXPECT_FALSE(sync.sync_now());
}

TEST(WalSyncTest, TheStoreCommitsAtOnceAndReportsDurableLater) {
  TempDir dir;
  LoopThread loop;
  auto opened = SqliteStore::open(dir / "hub.db");
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  std::promise<Status> durable;
  auto committed = loop.call([&] {
    if (auto st = store.sync_in_background(loop.loop()); !st) return st;
    return store.transaction_then_durable([&] { return store.put("k", "v"); },
                                          [&](Status st) { durable.set_value(st); });
  });
  ASSERT_TRUE(committed) << committed.error().message;
  auto st = durable.get_future().get();
  EXPECT_TRUE(st) << st.error().message;
  EXPECT_EQ(loop.call([&] { return store.get("k"); })->value_or(""), "v");

  // transaction() returns once its commit is synced; a failing one writes and calls nothing.
  EXPECT_TRUE(loop.call([&] { return store.transaction([&] { return store.put("k", "w"); }); }));
  bool called = false;
  auto failed = loop.call([&] {
    return store.transaction_then_durable(
        [&]() -> Status {
          if (auto s = store.put("k", "x"); !s) return s;
          return make_error(Errc::invalid_argument, "no");
        },
        [&](Status) { called = true; });
  });
  EXPECT_FALSE(failed);
  EXPECT_EQ(loop.call([&] { return store.get("k"); })->value_or(""), "w");
  loop.call([&] {
    opened->reset();  // joins the syncer; nothing is left to call back
    return 0;
  });
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace eddy::fleet
