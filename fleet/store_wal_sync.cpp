#include "fleet/store_wal_sync.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "fleet/thread_name.hpp"

namespace eddy::fleet {

WalSync::WalSync(EventLoop& loop, std::filesystem::path wal) : loop_(loop), wal_(std::move(wal)) {
  thread_ = std::thread([this] {
    name_this_thread("hub-walsync");
    run();
  });
}

WalSync::~WalSync() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

void WalSync::after_commit(std::function<void(Status)> done) {
  {
    std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(done));
  }
  wake_.notify_one();
}

void WalSync::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping, nothing left
    // Every commit whose callback is taken here wrote its frames before this sync starts.
    auto batch = std::move(waiting_);
    waiting_.clear();
    lock.unlock();
    Status st = sync_now();
    loop_.post([batch = std::move(batch), st] {
      for (const auto& done : batch) done(st);
    });
    lock.lock();
  }
}

Status WalSync::sync_now() {
  std::lock_guard lock(fd_mutex_);
  // The WAL lives as long as the database connection; should it have been replaced (a new
  // inode), the new file is the one to sync.
  struct stat named {}, open {};
  if (::stat(wal_.c_str(), &named) != 0) return std::unexpected(errno_error(errno, "find the database's write-ahead log", wal_.string()));
  if (fd_ >= 0 && (::fstat(fd_, &open) != 0 || open.st_ino != named.st_ino || open.st_dev != named.st_dev)) {
    ::close(fd_);
    fd_ = -1;
  }
  if (fd_ < 0) {
    fd_ = ::open(wal_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return std::unexpected(errno_error(errno, "open the database's write-ahead log", wal_.string()));
  }
  if (::fdatasync(fd_) != 0) return std::unexpected(errno_error(errno, "sync the database's write-ahead log to disk", wal_.string()));
  return {};
}

}  // namespace eddy::fleet
