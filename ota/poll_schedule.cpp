#include "ota/poll_schedule.hpp"

#include <algorithm>
#include <cmath>

namespace eddy::ota {

namespace {
using std::chrono::milliseconds;
constexpr milliseconds one_hour = std::chrono::hours(1);
}  // namespace

PollSchedule::PollSchedule(milliseconds interval, double jitter, std::optional<milliseconds> max_backoff,
                           std::uint64_t seed)
    : interval_(std::max(interval, milliseconds(1))),
      jitter_(std::isfinite(jitter) ? std::clamp(jitter, 0.0, 0.5) : 0.0),
      max_backoff_(max_backoff ? *max_backoff : std::min(interval_ * 10, one_hour)),
      random_(seed) {
  max_backoff_ = std::max(max_backoff_, interval_);
}

milliseconds PollSchedule::next_delay(bool last_poll_failed) {
  if (!last_poll_failed) {
    failures_ = 0;
  } else if (failures_ < 1'000'000) {
    ++failures_;
  }
  // interval × 2^failures, capped; doubling stops once it reaches the cap (no overflow).
  milliseconds base = interval_;
  for (int i = 0; i < failures_ && base < max_backoff_; ++i) base = std::min(base * 2, max_backoff_);
  base = std::min(base, max_backoff_);

  const bool capped = base >= max_backoff_;
  std::uniform_real_distribution<double> spread(-jitter_, capped ? 0.0 : jitter_);
  double factor = jitter_ > 0 ? 1.0 + spread(random_) : 1.0;
  auto delay = milliseconds(static_cast<milliseconds::rep>(std::llround(static_cast<double>(base.count()) * factor)));
  return std::clamp(delay, milliseconds(1), max_backoff_);
}

}  // namespace eddy::ota
