// The hub's follower (fleet/follower.hpp) on a real SSH-signed repository: a new tip is judged
// once, an unsigned commit is refused and not judged again, a signed one on top is accepted,
// an unreachable repository is a fetch failure, and the accepted fleet reloads without network.
#include "fleet/follower.hpp"

#include <gtest/gtest.h>

#include "tests/support/fleet.hpp"
#include "tests/support/support.hpp"

namespace eddy::fleet {
namespace {

using eddy::testing::TempDir;
using Kind = FollowResult::Kind;

TEST(FollowerTest, JudgesEachNewTipOnceAndRefusesAnUnsignedCommit) {
  TempDir dir;
  eddy::testing::Fleet fleet(dir / "fleet");
  const std::string first = fleet.publish("app", eddy::testing::AppBundle{"1.0", true, 1, {}});
  auto follower = Follower::open(
      FollowerOptions{fleet.repo().url(), "main", fleet.allowed_signers(), dir / "hub" / "repo.git"}, "", "");
  ASSERT_TRUE(follower) << follower.error().message;
  auto& f = **follower;

  auto accepted = f.poll();
  ASSERT_EQ(accepted.kind, Kind::accepted) << (accepted.error ? accepted.error->message : "");
  EXPECT_EQ(accepted.commit, first);
  EXPECT_EQ(accepted.accepted->fleet.rollouts.at(0).release, "app-1.0");
  f.mark_accepted(first);
  EXPECT_EQ(f.poll().kind, Kind::unchanged);

  fleet.set_rollout("app", "1.0", "[10, 100]");
  const std::string unsigned_commit = fleet.repo().commit("unsigned", false);
  auto refused = f.poll();
  ASSERT_EQ(refused.kind, Kind::refused);
  EXPECT_EQ(refused.commit, unsigned_commit);
  EXPECT_EQ(refused.error->code, Errc::unsigned_commit);
  f.mark_refused(unsigned_commit);
  EXPECT_EQ(f.poll().kind, Kind::unchanged) << "a refused tip is not judged again";
  EXPECT_EQ(f.last_accepted(), first);

  fleet.set_rollout("app", "1.0", "[20, 100]");
  const std::string signed_commit = fleet.repo().commit("signed on top");
  auto next = f.poll();
  ASSERT_EQ(next.kind, Kind::accepted) << (next.error ? next.error->message : "");
  f.mark_accepted(signed_commit);

  auto reloaded = f.reload_accepted();
  ASSERT_TRUE(reloaded) << reloaded.error().message;
  EXPECT_EQ(reloaded->commit.id, signed_commit);
  EXPECT_EQ(reloaded->fleet.rollouts.at(0).steps, (std::vector<double>{20, 100}));
}

TEST(FollowerTest, AnUnreachableRepositoryIsAFetchFailure) {
  TempDir dir;
  auto follower = Follower::open(FollowerOptions{"file://" + (dir / "missing").string(), "main", dir / "signers",
                                                 dir / "repo.git"},
                                 "", "");
  ASSERT_TRUE(follower) << follower.error().message;
  auto r = (*follower)->poll();
  EXPECT_EQ(r.kind, Kind::fetch_failed);
  ASSERT_TRUE(r.error);
  EXPECT_EQ((*follower)->reload_accepted().error().code, Errc::not_found);
}

}  // namespace
}  // namespace eddy::fleet
