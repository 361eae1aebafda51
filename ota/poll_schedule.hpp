// When to poll the release source next: every `interval`, jittered so that a fleet started
// together does not poll in lockstep, and backing off exponentially while polls fail.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace eddy::ota {

class PollSchedule {
 public:
  // interval: source.interval (at least 1 ms). Each delay is interval ± jitter (a fraction,
  // clamped to [0, 0.5]; default 10 %). After consecutive failures the delay doubles (with
  // jitter) up to max_backoff (default: 10 × interval but at most 1 h; never below interval).
  // A delay never exceeds max_backoff: at the cap, jitter only shortens it. A success resets
  // the backoff.
  explicit PollSchedule(std::chrono::milliseconds interval, double jitter = 0.1,
                        std::optional<std::chrono::milliseconds> max_backoff = {},
                        std::uint64_t seed = std::random_device{}());

  // The delay before the next poll, given how the poll that just finished went.
  std::chrono::milliseconds next_delay(bool last_poll_failed);
  int consecutive_failures() const { return failures_; }

  std::chrono::milliseconds interval() const { return interval_; }
  std::chrono::milliseconds max_backoff() const { return max_backoff_; }

 private:
  std::chrono::milliseconds interval_;
  double jitter_;
  std::chrono::milliseconds max_backoff_;
  std::mt19937_64 random_;
  int failures_ = 0;
};

}  // namespace eddy::ota
