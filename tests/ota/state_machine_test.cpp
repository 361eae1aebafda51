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
