#include "platform/event_loop.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "tests/support/support.hpp"

namespace {

using namespace std::chrono_literals;
using eddy::EventLoop;
using eddy::testing::wait_until;

// Runs a loop on a thread of its own for the test's length.
struct RunningLoop {
  EventLoop loop;
  std::thread thread{[this] { loop.run(); }};
  ~RunningLoop() {
    loop.stop();
    thread.join();
  }
};

TEST(EventLoop, PostFromAnotherThreadRunsOnTheLoopThread) {
  RunningLoop running;
  std::atomic<bool> ran{false}, on_loop{false};
  std::thread([&] {
    running.loop.post([&] {
      on_loop = running.loop.in_loop_thread();
      ran = true;
    });
  }).join();
  ASSERT_TRUE(wait_until([&] { return ran.load(); }));
  EXPECT_TRUE(on_loop.load());
  EXPECT_FALSE(running.loop.in_loop_thread());
}

TEST(EventLoop, AfterFiresOnceAndCancelPreventsIt) {
  RunningLoop running;
  std::atomic<int> fired{0}, cancelled_fired{0};
  auto once = running.loop.after(10ms, [&] { ++fired; });
  auto never = running.loop.after(200ms, [&] { ++cancelled_fired; });
  never.cancel();
  EXPECT_FALSE(never.active());
  ASSERT_TRUE(wait_until([&] { return fired.load() == 1; }));
  EXPECT_FALSE(once.active());
  // A marker timer queued after the cancelled one's deadline proves it had its chance.
  std::atomic<bool> marker{false};
  running.loop.after(300ms, [&] { marker = true; });
  ASSERT_TRUE(wait_until([&] { return marker.load(); }));
  EXPECT_EQ(fired.load(), 1);
  EXPECT_EQ(cancelled_fired.load(), 0);
}

TEST(EventLoop, EveryRepeatsUntilCancelled) {
  RunningLoop running;
  std::atomic<int> ticks{0};
  eddy::TimerHandle timer;
  timer = running.loop.every(5ms, [&] { ++ticks; });
  ASSERT_TRUE(wait_until([&] { return ticks.load() >= 3; }));
  EXPECT_TRUE(timer.active());
  std::atomic<bool> cancelled{false};
  running.loop.post([&] {
    timer.cancel();
    cancelled = true;
  });
  ASSERT_TRUE(wait_until([&] { return cancelled.load(); }));
  int after_cancel = ticks.load();
  std::atomic<bool> marker{false};
  running.loop.after(50ms, [&] { marker = true; });
  ASSERT_TRUE(wait_until([&] { return marker.load(); }));
  EXPECT_EQ(ticks.load(), after_cancel);
}

TEST(EventLoop, SignalsReachTheHandlerOnTheLoop) {
  EventLoop loop;
  std::atomic<int> received{0};
  ASSERT_TRUE(loop.on_signal({SIGUSR1, SIGUSR2}, [&](int signal) {
    received = signal;
    loop.stop();
  }));
  std::thread thread([&] { loop.run(); });
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  thread.join();  // the handler stops the loop
  EXPECT_EQ(received.load(), SIGUSR2);
}

TEST(EventLoop, StopBeforeRunMakesRunReturnAndRunWorksAgain) {
  EventLoop loop;
  loop.stop();
  loop.run();  // returns at once
  std::atomic<bool> ran{false};
  loop.post([&] {
    ran = true;
    loop.stop();
  });
  loop.run();
  EXPECT_TRUE(ran.load());
}

TEST(EventLoop, AThrowingHandlerDoesNotEndTheLoop) {
  EventLoop loop;
  loop.post([] { throw std::runtime_error("bug"); });
  std::atomic<bool> ran{false};
  loop.post([&] {
    ran = true;
    loop.stop();
  });
  loop.run();
  EXPECT_TRUE(ran.load());
}

}  // namespace
