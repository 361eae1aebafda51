#include "ota/state_machine.hpp"

#include <gtest/gtest.h>

namespace eddy::ota {
namespace {

TEST(StateMachine, HappyPathReachesCommitted) {
  State s = State::idle;
  for (Event e : {Event::fetched, Event::verified, Event::admitted, Event::download_started, Event::staged,
                  Event::activate, Event::activated, Event::probes_passed}) {
    auto next = next_state(s, e);
    ASSERT_TRUE(next) << next.error().message;
    s = *next;
  }
  EXPECT_EQ(s, State::committed);
}

TEST(StateMachine, FailedProbesRollBack) {
  auto s = next_state(State::probing, Event::probes_failed);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, State::rolling_back);
  EXPECT_EQ(*next_state(*s, Event::rolled_back), State::rolled_back);
}

TEST(StateMachine, UnhandledEventIsAnInternalError) {
  auto s = next_state(State::committed, Event::probes_failed);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::internal);
  EXPECT_NE(s.error().message.find("committed"), std::string::npos);
}

TEST(StateMachine, EveryStateHasARecoveryAndANameThatRoundTrips) {
  for (int i = 0; i <= static_cast<int>(State::failed); ++i) {
    auto s = static_cast<State>(i);
    EXPECT_EQ(state_from_name(state_name(s)), s);
    EXPECT_NE(recovery_name(recovery_for(s)), "unknown");
  }
  EXPECT_EQ(recovery_for(State::downloading), Recovery::discard_staging);
  EXPECT_EQ(recovery_for(State::activating), Recovery::roll_back);
  EXPECT_EQ(recovery_for(State::probing), Recovery::roll_back);
}

}  // namespace
}  // namespace eddy::ota

namespace eddy::ota {
namespace {

// rootfs: activating -> rebooting (trial boot armed) -> probing after the new slot booted, or
// rolling-back when the bootloader fell back; a restart in `rebooting` looks at the booted slot.
TEST(StateMachine, RootfsTrialBoot) {
  State s = State::idle;
  for (Event e : {Event::fetched, Event::verified, Event::admitted, Event::download_started, Event::staged,
                  Event::activate, Event::reboot, Event::booted, Event::probes_passed}) {
    auto next = next_state(s, e);
    ASSERT_TRUE(next) << next.error().message;
    s = *next;
  }
  EXPECT_EQ(s, State::committed);
  EXPECT_EQ(*next_state(State::activating, Event::reboot), State::rebooting);
  EXPECT_EQ(*next_state(State::rebooting, Event::boot_failed), State::rolling_back);
  EXPECT_EQ(recovery_for(State::rebooting), Recovery::after_reboot);
  EXPECT_EQ(state_name(State::rebooting), "rebooting");
  EXPECT_EQ(event_name(Event::boot_failed), "boot-failed");
  EXPECT_FALSE(next_state(State::probing, Event::reboot));  // only an activation reboots into a trial
}

}  // namespace
}  // namespace eddy::ota
