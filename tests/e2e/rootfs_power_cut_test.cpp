// The power-cut matrix of root file system updates (issue 3): eddyd is SIGKILLed (with its
// whole session, EDDY_FAULT_KILL_AT) at every state of a rootfs update and at points inside the
// slot write; then either eddyd alone starts again (a crash) or the device "reboots" (a power
// cut: the bootloader's environment decides which slot boots). After every case the device must
// boot a slot that was committed good and converge: a healthy release committed on slot B, a
// failing one rolled back to slot A with the rollback recorded. The matrix is printed.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "tests/support/boot_sim.hpp"

namespace eddy::testing {
namespace {

using namespace std::chrono_literals;
using bootenv::Slot;

enum class Cut { kill, power };  // eddyd restarted on the same boot, or the device rebooted

// Drive one case to its end; "" when it converged as it must, else what went wrong. `trail`
// says what happened (kills, boots, the last outcome).
std::string run_case(const stdfs::path& dir, const std::string& point, bool healthy, Cut cut, std::string& trail) {
  RootfsDevice rig(dir, BootScheme::uboot_rauc);
  Device& device = rig.device();
  auto log_tail = [&] {
    auto log = device.log();
    return "\n--- eddyd log (end) ---\n" + (log.size() > 6000 ? log.substr(log.size() - 6000) : log);
  };
  if (rig.boot() != Slot::a) return "the factory slot A did not boot";
  device.stop();
  rig.publish("1.1.0", healthy ? 0 : 1);

  bool fired = false;
  auto env = [&]() -> std::map<std::string, std::string> {
    if (fired) return {};
    return {{"EDDY_FAULT_KILL_AT", point}};
  };
  device.start(env(), /*wait_ready=*/false);
  std::string outcome;
  for (int step = 0; step < 16; ++step) {
    std::optional<int> exited;
    bool answered = wait_until(
        [&] {
          exited = device.wait_exit(1ms);
          return exited || device.eddy({"status"}).exit_code == 0;
        },
        60s);
    if (!answered) return "eddyd neither answered nor exited" + log_tail();
    if (!exited) {
      outcome = rig.check();
      if (outcome.empty()) exited = device.wait_exit(30s);  // cut off while it answered
    }
    if (exited) {
      if (fired || !WIFSIGNALED(*exited) || WTERMSIG(*exited) != SIGKILL)
        return "eddyd exited unexpectedly (status " + std::to_string(*exited) + ") after: " + trail + log_tail();
      fired = true;
      device.kill_session();
      trail += " killed;";
      if (cut == Cut::power) {
        trail += std::string(" booted ") + (rig.boot() == Slot::a ? "A;" : "B;");
      } else {
        device.start();
      }
      continue;
    }
    if (outcome == "rebooting") {
      if (!wait_until([&] { return rig.reboot_requested(); }, 60s))
        return "outcome `rebooting` but no reboot was asked for" + log_tail();
      trail += std::string(" rebooted into ") + (rig.boot(true, env()) == Slot::a ? "A;" : "B;");
      continue;
    }
    trail += " " + outcome + ";";
    break;
  }
  if (!fired) return "eddyd never reached " + point + " (" + trail + ")" + log_tail();
  if (outcome == "rebooting" || outcome.empty()) return "did not settle in 16 steps:" + trail + log_tail();

  // Converged: the committed slot boots, again and again, with the intended result.
  const Slot expected = healthy ? Slot::b : Slot::a;
  for (int again = 0; again < 2; ++again) {
    Slot booted = rig.boot();
    if (booted != expected)
      return std::string("booted ") + (booted == Slot::a ? "A" : "B") + " after settling;" + trail + log_tail();
  }
  std::string last = rig.check();
  if (last != "up-to-date") return "after settling, eddy check says `" + last + "`;" + trail + log_tail();
  auto status = rig.status();
  if (healthy) {
    if (status["current_version"] != "1.1.0" || status["last_outcome"] != "committed")
      return "1.1.0 not committed: " + status.dump() + ";" + trail + log_tail();
  } else {
    if (!status["current_version"].is_null() || status["last_outcome"] != "rolled-back")
      return "no recorded rollback: " + status.dump() + ";" + trail + log_tail();
    if (rig.slot_bytes(Slot::a, rig.factory_image().size()) != rig.factory_image())
      return "slot A was changed;" + trail;
  }
  if (rig.reboot_requested()) return "a reboot is still being asked for;" + trail + log_tail();
  return "";
}

void run_matrix(const std::string& name, const std::vector<std::string>& points, bool healthy) {
  int run = 0, passed = 0;
  std::string table;
  for (Cut cut : {Cut::kill, Cut::power}) {
    for (const auto& point : points) {
      TempDir dir;
      ++run;
      std::string trail;
      std::string failure = run_case(dir.path(), point, healthy, cut, trail);
      const std::string label = std::string(cut == Cut::kill ? "kill -9, eddyd restarted" : "power cut, reboot") +
                                " at " + point;
      if (failure.empty()) {
        ++passed;
        table += "  ok    " + label + " (" + trail.substr(trail.empty() ? 0 : 1) + ")\n";
      } else {
        table += "  FAIL  " + label + "\n";
        ADD_FAILURE() << label << ": " << failure;
      }
    }
  }
  std::cout << "power-cut matrix (" << name << "):\n"
            << table << "power-cut matrix: " << run << " cases run, " << passed << " passed\n";
  EXPECT_EQ(run, passed);
}

TEST(RootfsPowerCut, HealthyReleaseCutWhileWritingEndsCommittedOnB) {
  run_matrix("healthy release, cut while writing the slot",
             {"state:downloading", "stream:mid", "slot:written-25%", "slot:written-50%", "slot:before-fsync",
              "slot:before-verify"},
             true);
}

TEST(RootfsPowerCut, HealthyReleaseCutInLaterStatesEndsCommittedOnB) {
  run_matrix("healthy release, cut after the write",
             {"state:staged", "state:activating", "state:rebooting", "reboot:before-command", "state:probing",
              "state:committed"},
             true);
}

TEST(RootfsPowerCut, FailingReleaseEndsRolledBackOnA) {
  run_matrix("failing release", {"state:rebooting", "state:probing", "state:rolling-back", "state:rolled-back"}, false);
}

}  // namespace
}  // namespace eddy::testing
