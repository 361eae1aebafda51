// The hub store's disk syncs off the event loop: after a transaction committed without waiting
// for the disk (SQLite WAL, synchronous=NORMAL: its frames are written to <db>-wal but not yet
// synced), WalSync fdatasyncs that file on a thread of its own and then calls back on the loop.
// Everything written to the WAL before the sync began is then on disk, so a commit counts as
// durable once its callback runs; the requests of the next group are served while the disk
// syncs, and one sync covers every commit made before it started.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "platform/error.hpp"
#include "platform/event_loop.hpp"

namespace eddy::fleet {

class WalSync {
 public:
  WalSync(EventLoop& loop, std::filesystem::path wal);
  // Syncs what is still waiting, posts its callbacks, and joins the thread.
  ~WalSync();
  WalSync(const WalSync&) = delete;
  WalSync& operator=(const WalSync&) = delete;

  // Call after a commit: `done` runs on the loop once the WAL is synced, with the error when the
  // sync failed (the commit may then be lost with a power cut: acknowledge nothing).
  void after_commit(std::function<void(Status)> done);
  // Sync now, on the calling thread.
  Status sync_now();

 private:
  void run();

  EventLoop& loop_;
  std::filesystem::path wal_;
  std::mutex fd_mutex_;
  int fd_ = -1;  // the WAL, opened at the first sync (the file whose inode <db>-wal names)
  std::mutex mutex_;  // guards stopping_ and waiting_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<std::function<void(Status)>> waiting_;
  std::thread thread_;
};

}  // namespace eddy::fleet
