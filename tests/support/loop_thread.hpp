// An EventLoop running on a thread of its own, for tests of servers built on it.
#pragma once

#include <future>
#include <memory>
#include <thread>

#include "platform/event_loop.hpp"

namespace eddy::testing {

class LoopThread {
 public:
  LoopThread() : thread_([this] { loop_.run(); }) {}
  ~LoopThread() {
    loop_.stop();
    thread_.join();
  }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  EventLoop& loop() { return loop_; }

  // Run `fn` on the loop thread and wait for its result.
  template <typename F>
  auto call(F fn) {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(fn));
    auto future = task->get_future();
    loop_.post([task] { (*task)(); });
    return future.get();
  }

 private:
  EventLoop loop_;
  std::thread thread_;
};

}  // namespace eddy::testing
