// The hub's answer applied to the device's own assignments, and its rollback orders.
#include "ota/hub_gate.hpp"

#include <gtest/gtest.h>

namespace eddy::ota {
namespace {

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

Release release(const std::string& name, const std::string& target) {
  Release r;
  r.name = name;
  r.target = target;
  return r;
}

Assignment assignment(const std::string& rollout, const Release& r) {
  Assignment a;
  a.target = r.target;
  a.rollout = rollout;
  a.release = r;
  a.admitted = true;  // what time pacing alone would have said
  a.next_step_at = 1234;
  return a;
}

HubGate gate(const std::string& release, bool admitted, std::int64_t generation, bool rollback = false) {
  HubGate g;
  g.release = release;
  g.admitted = admitted;
  g.generation = generation;
  g.rollback = rollback;
  g.state = rollback ? "rolled-back" : "progressing";
  g.reason = "the hub's words";
  return g;
}

TEST(HubGates, OnlyTheSameReleaseAdmittedByTheHubIsAdmitted) {
  const auto app2 = release("app-2", "app");
  SyncResponse sync;
  sync.commit = "abcdef0123";
  sync.rollouts["admitted"] = gate("app-2", true, 3);
  sync.rollouts["waiting"] = gate("app-2", false, 1);
  sync.rollouts["other"] = gate("app-1", true, 1);
  sync.rollouts["halted"] = gate("app-2", true, 2, true);
  std::vector<Assignment> as = {assignment("admitted", app2), assignment("waiting", app2), assignment("other", app2),
                                assignment("halted", app2), assignment("unknown", app2)};
  apply_hub_gates(as, sync, "https://hub");
  for (const auto& a : as) EXPECT_FALSE(a.next_step_at) << a.rollout;
  EXPECT_TRUE(as[0].admitted);
  EXPECT_EQ(as[0].generation, 3);
  EXPECT_TRUE(has(as[0].reason, "admitted by the hub (rollout `admitted`, generation 3, progressing): the hub's words"))
      << as[0].reason;
  EXPECT_FALSE(as[1].admitted);
  EXPECT_TRUE(has(as[1].reason, "not admitted yet")) << as[1].reason;
  EXPECT_FALSE(as[2].admitted);
  EXPECT_EQ(as[2].generation, 0);
  EXPECT_TRUE(has(as[2].reason, "for release app-1, but this device's commit assigns app-2")) << as[2].reason;
  EXPECT_FALSE(as[3].admitted);  // admitted: true beside rollback: true admits nothing
  EXPECT_TRUE(has(as[3].reason, "rolls rollout `halted` back")) << as[3].reason;
  EXPECT_FALSE(as[4].admitted);
  EXPECT_TRUE(has(as[4].reason, "does not list rollout `unknown`")) << as[4].reason;
  EXPECT_TRUE(has(as[4].reason, "abcdef0")) << as[4].reason;
}

TEST(HubGates, NoAnswerAdmitsNothingAndSaysWhy) {
  std::vector<Assignment> as = {assignment("app", release("app-2", "app"))};
  apply_hub_gates(as, std::unexpected(Error{Errc::network, "connect 127.0.0.1:9: refused"}), "https://hub");
  EXPECT_FALSE(as[0].admitted);
  EXPECT_TRUE(has(as[0].reason, "the hub https://hub could not be asked (connect 127.0.0.1:9: refused)"))
      << as[0].reason;
  EXPECT_TRUE(has(as[0].reason, "asked again at the next poll")) << as[0].reason;
}

TEST(HubRollbackOrders, ApplyToTheTargetRunningTheRolloutsRelease) {
  Fleet fleet;
  fleet.releases.emplace("app-2", release("app-2", "app"));
  fleet.releases.emplace("app-1", release("app-1", "app"));
  fleet.releases.emplace("db-5", release("db-5", "db"));
  Rollout r;
  r.name = "app-rollout";
  r.release = "app-2";
  fleet.rollouts.push_back(r);

  SyncResponse sync;
  sync.rollouts["app-rollout"] = gate("app-2", false, 4, true);
  // A rollout this device's commit does not have: its target comes from the release's name.
  sync.rollouts["db-rollout"] = gate("db-5", false, 1, true);
  // Not halted: no order.
  sync.rollouts["calm"] = gate("app-2", true, 1);

  auto orders = rollback_orders(fleet, sync, {{"app", "app-2"}, {"db", "db-5"}});
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].target, "app");
  EXPECT_EQ(orders[0].rollout, "app-rollout");
  EXPECT_EQ(orders[0].release, "app-2");
  EXPECT_EQ(orders[0].generation, 4);
  EXPECT_TRUE(has(orders[0].reason, "the hub rolled rollout `app-rollout` back (generation 4, rolled-back)"))
      << orders[0].reason;
  EXPECT_EQ(orders[1].target, "db");

  // Running something else (already rolled back, or never took it): nothing to do.
  EXPECT_TRUE(rollback_orders(fleet, sync, {{"app", "app-1"}}).empty());
  // A release the device's repository does not know at all: no target to act on.
  SyncResponse foreign;
  foreign.rollouts["x"] = gate("unknown-9", false, 1, true);
  EXPECT_TRUE(rollback_orders(fleet, foreign, {{"app", "unknown-9"}}).empty());
}

}  // namespace
}  // namespace eddy::ota
