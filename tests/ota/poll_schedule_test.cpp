#include "ota/poll_schedule.hpp"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace eddy::ota {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(PollSchedule, DelaysStayWithinTheJitterAndSpread) {
  PollSchedule schedule(seconds(60), 0.1, {}, 42);
  std::set<long long> seen;
  for (int i = 0; i < 1000; ++i) {
    auto d = schedule.next_delay(false);
    EXPECT_GE(d, milliseconds(54'000));
    EXPECT_LE(d, milliseconds(66'000));
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 500u) << "jitter spreads the delays";
  EXPECT_EQ(schedule.consecutive_failures(), 0);
}

TEST(PollSchedule, DevicesWithDifferentSeedsDoNotPollInLockstep) {
  PollSchedule a(seconds(60), 0.1, {}, 1);
  PollSchedule b(seconds(60), 0.1, {}, 2);
  int same = 0;
  for (int i = 0; i < 100; ++i) same += a.next_delay(false) == b.next_delay(false);
  EXPECT_LT(same, 5);
}

TEST(PollSchedule, SameSeedSameSequence) {
  PollSchedule a(seconds(30), 0.2, {}, 7);
  PollSchedule b(seconds(30), 0.2, {}, 7);
  for (int i = 0; i < 50; ++i) {
    bool failed = i % 7 < 3;
    EXPECT_EQ(a.next_delay(failed), b.next_delay(failed));
  }
}

TEST(PollSchedule, NoJitterIsExact) {
  PollSchedule schedule(seconds(10), 0.0, {}, 3);
  EXPECT_EQ(schedule.next_delay(false), seconds(10));
  EXPECT_EQ(schedule.next_delay(true), seconds(20));
  EXPECT_EQ(schedule.next_delay(true), seconds(40));
  EXPECT_EQ(schedule.next_delay(true), seconds(80));
  EXPECT_EQ(schedule.next_delay(true), seconds(100));  // default cap: 10 × interval
  EXPECT_EQ(schedule.next_delay(true), seconds(100));
  EXPECT_EQ(schedule.consecutive_failures(), 5);
  EXPECT_EQ(schedule.next_delay(false), seconds(10));
  EXPECT_EQ(schedule.consecutive_failures(), 0);
}

TEST(PollSchedule, BackoffDoublesWithJitterCapsAndResets) {
  PollSchedule schedule(seconds(60), 0.1, {}, 99);
  EXPECT_EQ(schedule.max_backoff(), minutes(10));
  for (int round = 0; round < 3; ++round) {
    milliseconds base = seconds(60);
    for (int failure = 1; failure <= 8; ++failure) {
      base = std::min<milliseconds>(base * 2, minutes(10));
      auto d = schedule.next_delay(true);
      EXPECT_EQ(schedule.consecutive_failures(), failure);
      EXPECT_GE(d.count(), base.count() * 9 / 10) << "failure " << failure;
      EXPECT_LE(d, std::min<milliseconds>(base * 11 / 10, minutes(10))) << "failure " << failure;
    }
    auto d = schedule.next_delay(false);
    EXPECT_EQ(schedule.consecutive_failures(), 0);
    EXPECT_GE(d, seconds(54));
    EXPECT_LE(d, seconds(66));
  }
}

TEST(PollSchedule, AtTheCapJitterStillSpreads) {
  PollSchedule schedule(seconds(60), 0.1, {}, 5);
  for (int i = 0; i < 10; ++i) schedule.next_delay(true);
  std::set<long long> seen;
  for (int i = 0; i < 100; ++i) {
    auto d = schedule.next_delay(true);
    EXPECT_LE(d, minutes(10));
    EXPECT_GE(d, seconds(540));
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 50u);
}

TEST(PollSchedule, DefaultCapIsAtMostAnHourAndAtLeastTheInterval) {
  EXPECT_EQ(PollSchedule(minutes(30), 0.1, {}, 1).max_backoff(), std::chrono::hours(1));
  EXPECT_EQ(PollSchedule(std::chrono::hours(2), 0.1, {}, 1).max_backoff(), std::chrono::hours(2));
  EXPECT_EQ(PollSchedule(seconds(1), 0.1, {}, 1).max_backoff(), seconds(10));
  // An explicit cap below the interval is raised to the interval.
  EXPECT_EQ(PollSchedule(seconds(60), 0.1, seconds(5), 1).max_backoff(), seconds(60));
  PollSchedule explicit_cap(seconds(1), 0.0, seconds(5), 1);
  EXPECT_EQ(explicit_cap.max_backoff(), seconds(5));
  for (int i = 0; i < 10; ++i) explicit_cap.next_delay(true);
  EXPECT_EQ(explicit_cap.next_delay(true), seconds(5));
}

TEST(PollSchedule, NonsenseArgumentsAreClamped) {
  PollSchedule zero(milliseconds(0), -1.0, {}, 1);
  EXPECT_GE(zero.next_delay(false), milliseconds(1));
  PollSchedule wild(seconds(10), 7.0, {}, 1);  // jitter clamped to 50 %
  for (int i = 0; i < 100; ++i) {
    auto d = wild.next_delay(false);
    EXPECT_GE(d, seconds(5));
    EXPECT_LE(d, seconds(15));
  }
  PollSchedule many(seconds(10), 0.1, {}, 1);
  for (int i = 0; i < 100'000; ++i) EXPECT_LE(many.next_delay(true), seconds(100));
}

}  // namespace
}  // namespace eddy::ota
