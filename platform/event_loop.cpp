#include "platform/event_loop.hpp"

#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <exception>
#include <string>

#include "platform/event_loop_asio.hpp"
#include "platform/log.hpp"

namespace eddy {

struct TimerHandle::State {
  explicit State(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
  std::atomic<bool> active{true};
  std::chrono::milliseconds interval{0};  // zero: one-shot
  std::function<void()> fn;
};

namespace {

void arm(const std::shared_ptr<TimerHandle::State>& state) {
  state->timer.async_wait([state](const std::error_code& ec) {
    if (ec || !state->active.load()) return;
    if (state->interval.count() == 0) {
      state->active = false;
      auto fn = std::move(state->fn);
      fn();
      return;
    }
    state->fn();
    if (!state->active.load()) return;
    // Keep the period without drift, but do not fire a burst after the loop was busy.
    auto next = state->timer.expiry() + state->interval;
    auto now = asio::steady_timer::clock_type::now();
    state->timer.expires_at(next > now ? next : now + state->interval);
    arm(state);
  });
}

}  // namespace

void TimerHandle::cancel() {
  if (!state_) return;
  state_->active = false;
  auto state = state_;
  asio::dispatch(state->timer.get_executor(), [state] { state->timer.cancel(); });
}

bool TimerHandle::active() const { return state_ && state_->active.load(); }

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {}

EventLoop::~EventLoop() = default;

void EventLoop::run() {
  {
    std::lock_guard lock(impl_->stop_mutex);
    if (impl_->stop_requested) {
      impl_->stop_requested = false;
      return;
    }
    impl_->io.restart();
  }
  for (;;) {
    try {
      impl_->io.run();
      std::lock_guard lock(impl_->stop_mutex);
      impl_->stop_requested = false;
      return;
    } catch (const std::exception& e) {
      log::error(std::string("bug: an event loop handler threw: ") + e.what());
    } catch (...) {
      log::error("bug: an event loop handler threw a non-standard exception");
    }
  }
}

void EventLoop::stop() {
  std::lock_guard lock(impl_->stop_mutex);
  impl_->stop_requested = true;
  impl_->io.stop();
}

void EventLoop::post(std::function<void()> fn) { asio::post(impl_->io, std::move(fn)); }

static TimerHandle start_timer(asio::io_context& io, std::chrono::milliseconds delay,
                               std::chrono::milliseconds interval, std::function<void()> fn) {
  auto state = std::make_shared<TimerHandle::State>(io);
  state->interval = interval;
  state->fn = std::move(fn);
  // Arm on the loop thread: an Asio timer object must not be used from two threads at once.
  asio::dispatch(io, [state, delay] {
    if (!state->active.load()) return;
    state->timer.expires_after(delay);
    arm(state);
  });
  return TimerHandle(state);
}

TimerHandle EventLoop::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  return start_timer(impl_->io, delay, std::chrono::milliseconds(0), std::move(fn));
}

TimerHandle EventLoop::every(std::chrono::milliseconds interval, std::function<void()> fn) {
  if (interval.count() <= 0) interval = std::chrono::milliseconds(1);
  return start_timer(impl_->io, interval, interval, std::move(fn));
}

namespace {

void wait_signal(asio::signal_set& set, std::shared_ptr<std::function<void(int)>> fn) {
  set.async_wait([&set, fn](const std::error_code& ec, int signal) {
    if (ec) return;
    (*fn)(signal);
    wait_signal(set, fn);
  });
}

}  // namespace

Status EventLoop::on_signal(std::initializer_list<int> signals, std::function<void(int)> fn) {
  auto set = std::make_unique<asio::signal_set>(impl_->io);
  for (int signal : signals) {
    std::error_code ec;
    set->add(signal, ec);
    if (ec) return make_error(Errc::internal, "handle signal " + std::to_string(signal) + ": " + ec.message());
  }
  wait_signal(*set, std::make_shared<std::function<void(int)>>(std::move(fn)));
  impl_->signal_sets.push_back(std::move(set));
  return {};
}

bool EventLoop::in_loop_thread() const { return impl_->io.get_executor().running_in_this_thread(); }

}  // namespace eddy
