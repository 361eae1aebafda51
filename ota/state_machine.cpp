#include "ota/state_machine.hpp"

#include <array>
#include <string>

namespace eddy::ota {

namespace {

struct Transition {
  State from;
  Event event;
  State to;
};

// The whole machine, one row a line, top to bottom in the order an update goes.
constexpr std::array kTable = {
    Transition{State::idle, Event::fetched, State::fetched},
    Transition{State::idle, Event::admitted, State::admitted},  // no new commit: a step opened
    Transition{State::idle, Event::rollback_requested, State::rolling_back},
    Transition{State::fetched, Event::verified, State::verified},
    Transition{State::fetched, Event::refused, State::failed},
    Transition{State::fetched, Event::interrupted, State::failed},
    Transition{State::verified, Event::admitted, State::admitted},
    Transition{State::verified, Event::not_admitted, State::idle},
    Transition{State::verified, Event::interrupted, State::failed},
    Transition{State::admitted, Event::download_started, State::downloading},
    Transition{State::admitted, Event::refused, State::failed},
    Transition{State::admitted, Event::interrupted, State::failed},
    Transition{State::downloading, Event::staged, State::staged},
    Transition{State::downloading, Event::stage_failed, State::failed},
    Transition{State::downloading, Event::interrupted, State::failed},
    Transition{State::staged, Event::activate, State::activating},
    Transition{State::staged, Event::interrupted, State::failed},
    Transition{State::activating, Event::activated, State::probing},
    Transition{State::activating, Event::activate_failed, State::rolling_back},
    Transition{State::activating, Event::interrupted, State::rolling_back},
    Transition{State::activating, Event::reboot, State::rebooting},  // rootfs: trial boot
    Transition{State::rebooting, Event::booted, State::probing},
    Transition{State::rebooting, Event::boot_failed, State::rolling_back},
    Transition{State::probing, Event::probes_passed, State::committed},
    Transition{State::probing, Event::probes_failed, State::rolling_back},
    Transition{State::probing, Event::interrupted, State::rolling_back},
    Transition{State::rolling_back, Event::rolled_back, State::rolled_back},
};

}  // namespace

std::string_view state_name(State s) {
  switch (s) {
    case State::idle: return "idle";
    case State::fetched: return "fetched";
    case State::verified: return "verified";
    case State::admitted: return "admitted";
    case State::downloading: return "downloading";
    case State::staged: return "staged";
    case State::activating: return "activating";
    case State::rebooting: return "rebooting";
    case State::probing: return "probing";
    case State::committed: return "committed";
    case State::rolling_back: return "rolling-back";
    case State::rolled_back: return "rolled-back";
    case State::failed: return "failed";
  }
  return "unknown";
}

std::optional<State> state_from_name(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(State::failed); ++i) {
    auto s = static_cast<State>(i);
    if (state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view event_name(Event e) {
  switch (e) {
    case Event::fetched: return "fetched";
    case Event::verified: return "verified";
    case Event::refused: return "refused";
    case Event::admitted: return "admitted";
    case Event::not_admitted: return "not-admitted";
    case Event::download_started: return "download-started";
    case Event::staged: return "staged";
    case Event::stage_failed: return "stage-failed";
    case Event::activated: return "activated";
    case Event::activate_failed: return "activate-failed";
    case Event::probes_passed: return "probes-passed";
    case Event::probes_failed: return "probes-failed";
    case Event::rolled_back: return "rolled-back";
    case Event::activate: return "activate";
    case Event::interrupted: return "interrupted";
    case Event::rollback_requested: return "rollback-requested";
    case Event::reboot: return "reboot";
    case Event::booted: return "booted";
    case Event::boot_failed: return "boot-failed";
  }
  return "unknown";
}

bool is_terminal(State s) {
  return s == State::committed || s == State::rolled_back || s == State::failed;
}

Expected<State> next_state(State from, Event event) {
  for (const auto& t : kTable)
    if (t.from == from && t.event == event) return t.to;
  return make_error(Errc::internal, "state machine: event `" + std::string(event_name(event)) +
                                        "` is not handled in state `" + std::string(state_name(from)) + "`");
}

Recovery recovery_for(State persisted) {
  switch (persisted) {
    case State::idle:
    case State::committed:
    case State::rolled_back:
    case State::failed:
      return Recovery::nothing;
    case State::fetched:
    case State::verified:
    case State::admitted:
      return Recovery::restart_cycle;
    case State::downloading:
      return Recovery::discard_staging;
    case State::staged:
      return Recovery::continue_staged;
    case State::activating:
    case State::probing:
    case State::rolling_back:
      return Recovery::roll_back;
    case State::rebooting:
      return Recovery::after_reboot;
  }
  return Recovery::roll_back;
}

std::string_view recovery_name(Recovery r) {
  switch (r) {
    case Recovery::nothing: return "nothing";
    case Recovery::restart_cycle: return "restart-cycle";
    case Recovery::discard_staging: return "discard-staging";
    case Recovery::continue_staged: return "continue-staged";
    case Recovery::roll_back: return "roll-back";
    case Recovery::after_reboot: return "after-reboot";
  }
  return "unknown";
}

}  // namespace eddy::ota
