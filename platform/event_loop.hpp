// The daemon's single event loop: timers, signals, sockets and work posted from other
// threads all run on the thread that calls run(). Asio stays behind this wrapper (STYLE.md:
// no io_context in headers); platform code that needs the io_context includes
// platform/event_loop_asio.hpp.
#pragma once

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>

#include "platform/error.hpp"

namespace eddy {

// A timer started by EventLoop::after or EventLoop::every. Dropping the handle does not cancel
// the timer; cancel() does, from any thread, and guarantees the callback does not start
// afterwards (a callback already running on the loop thread finishes).
class TimerHandle {
 public:
  struct State;
  TimerHandle() = default;
  explicit TimerHandle(std::shared_ptr<State> state) : state_(std::move(state)) {}
  void cancel();
  // True until the one-shot timer fired or the timer was cancelled.
  bool active() const;

 private:
  std::shared_ptr<State> state_;
};

class EventLoop {
 public:
  struct Impl;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Run handlers on this thread until stop(). May be called again after it returned. An
  // exception escaping a handler is a bug: it is logged and the loop goes on.
  void run();
  // Make run() return soon. Thread-safe.
  void stop();
  // Run `fn` on the loop thread. Thread-safe.
  void post(std::function<void()> fn);
  // Run `fn` once after `delay`. Thread-safe.
  TimerHandle after(std::chrono::milliseconds delay, std::function<void()> fn);
  // Run `fn` every `interval` (first after one interval) until cancelled. Thread-safe.
  TimerHandle every(std::chrono::milliseconds interval, std::function<void()> fn);
  // Call `fn(signal)` on the loop thread each time one of `signals` arrives (they are no
  // longer delivered to the process's default handler). Call before run() or on the loop thread.
  Status on_signal(std::initializer_list<int> signals, std::function<void(int)> fn);
  // True on the thread currently inside run().
  bool in_loop_thread() const;

  // For platform code built on Asio (see event_loop_asio.hpp).
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace eddy
