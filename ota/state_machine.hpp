// The update state machine: states, events, and the one transition table. Every update of a
// target walks this table; the state is persisted before the side effect of the state runs,
// and recovery_for() says where a restarted eddyd resumes from a persisted state.
#pragma once

#include <optional>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::ota {

enum class State {
  idle,          // nothing in progress
  fetched,       // a new commit is in the local repository
  verified,      // its signature and ancestry were accepted
  admitted,      // the rollout admits this device to the release
  downloading,   // payload streaming into a staging folder
  staged,        // payload complete and verified on disk, not active
  activating,    // switching to the new version (pre/post-activate hooks, link, restart)
  rebooting,     // rootfs: a trial boot of the new slot is armed and the reboot asked for
  probing,       // health analysis of the new version
  committed,     // the new version passed and is the committed one
  rolling_back,  // returning to the previous committed version
  rolled_back,   // back on the previous version; the release is marked failed
  failed,        // the update stopped before activation (bad payload, refused); nothing changed
};

enum class Event {
  fetched,          // new commit fetched
  verified,         // signature and ancestry good
  refused,          // trust or model refused the commit: nothing to do
  admitted,         // the device's place in line is open for the release
  not_admitted,     // not (yet) this device's turn, or nothing new for it
  download_started,
  staged,           // payload verified and unpacked
  stage_failed,     // digest, size, unsafe path, disk full: discard staging
  activated,        // switched to the new version
  activate_failed,  // a hook or the restart failed
  probes_passed,
  probes_failed,
  rolled_back,      // previous version running again
  activate,           // begin switching to the staged version
  interrupted,        // eddyd stopped (crash, power cut) in the middle; found at start-up
  rollback_requested, // an operator asked for the previous version (`eddy rollback`)
  reboot,             // rootfs: trial boot armed, reboot asked for
  booted,             // rootfs: after the reboot, the new slot runs
  boot_failed,        // rootfs: the new slot did not come up (the bootloader fell back), or no reboot
};

std::string_view state_name(State s);
std::optional<State> state_from_name(std::string_view name);
std::string_view event_name(Event e);

bool is_terminal(State s);

// The next state for `event` in `from`, or an Errc::internal error naming both: an event
// that the table does not handle is a bug.
Expected<State> next_state(State from, Event event);

// Where an update resumes after eddyd restarts with `persisted` as the last recorded state.
enum class Recovery {
  nothing,          // idle or a terminal state: nothing to do
  restart_cycle,    // nothing on disk changed yet: start the cycle again from idle
  discard_staging,  // a partial download may exist: remove it, mark the attempt failed
  continue_staged,  // the staged version is complete: go on with activation
  roll_back,        // the switch may have happened or the new version was unproven: roll back
  after_reboot,     // rootfs: see which slot booted: probe the new one, or record the failed trial
};
Recovery recovery_for(State persisted);
std::string_view recovery_name(Recovery r);

}  // namespace eddy::ota
