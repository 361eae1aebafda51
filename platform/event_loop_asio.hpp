// EventLoop's inside, for platform code that builds on Asio (sockets, servers). Include only
// from platform/*.cpp: everything else sees EventLoop alone.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <memory>
#include <mutex>
#include <vector>

#include "platform/event_loop.hpp"

namespace eddy {

struct EventLoop::Impl {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::vector<std::unique_ptr<asio::signal_set>> signal_sets;
  std::mutex stop_mutex;
  bool stop_requested = false;  // stop() before run(): run() returns at once
};

inline asio::io_context& io_context_of(EventLoop& loop) { return loop.impl().io; }

}  // namespace eddy
