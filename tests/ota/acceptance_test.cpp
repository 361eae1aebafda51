// Accepting a fetched fleet commit (ota/acceptance.hpp) with a real signed repository: each
// refusal has its code and a message naming the commit; a good commit comes with its fleet.
#include "ota/acceptance.hpp"

#include <gtest/gtest.h>

#include "tests/support/fleet.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::contains;
using eddy::testing::TempDir;

class AcceptanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.publish("app", eddy::testing::AppBundle{"1.0", true, 1, {}});
    auto source = GitSource::open(dir_ / "follower.git", fleet_.repo().url(), "main");
    ASSERT_TRUE(source) << source.error().message;
    source_ = std::make_unique<GitSource>(std::move(*source));
  }

  std::string fetch() {
    auto tip = source_->fetch();
    EXPECT_TRUE(tip) << tip.error().message;
    return tip ? *tip : "";
  }

  Error refusal(const std::string& commit, const std::string& last_accepted = {}) {
    auto judged = check_fetched_commit(*source_, commit, fleet_.allowed_signers(), last_accepted);
    EXPECT_FALSE(judged) << commit << " was accepted";
    if (judged) return Error{Errc::internal, "accepted"};
    EXPECT_TRUE(contains(judged.error().message, commit.substr(0, 7))) << judged.error().message;
    return judged.error();
  }

  TempDir dir_;
  eddy::testing::Fleet fleet_{dir_ / "fleet"};
  std::unique_ptr<GitSource> source_;
};

TEST_F(AcceptanceTest, ASignedCommitIsAcceptedWithItsFleet) {
  const std::string tip = fetch();
  auto judged = check_fetched_commit(*source_, tip, fleet_.allowed_signers(), "");
  ASSERT_TRUE(judged) << judged.error().message;
  EXPECT_EQ(judged->commit.id, tip);
  EXPECT_EQ(judged->signer.principal, "fleet@example.com");
  ASSERT_EQ(judged->fleet.rollouts.size(), 1u);
  EXPECT_EQ(judged->fleet.rollouts[0].release, "app-1.0");
  EXPECT_TRUE(judged->fleet.releases.contains("app-1.0"));
  // A later signed commit on top is accepted too.
  fleet_.set_rollout("app", "1.0", "[10, 100]");
  const std::string next_commit = fleet_.repo().commit("widen slower");
  EXPECT_EQ(fetch(), next_commit);
  EXPECT_TRUE(check_fetched_commit(*source_, next_commit, fleet_.allowed_signers(), tip));
}

TEST_F(AcceptanceTest, AnUnsignedCommitIsRefused) {
  fleet_.set_rollout("app", "1.0", "[10, 100]");
  const std::string commit = fleet_.repo().commit("unsigned", false);
  fetch();
  EXPECT_EQ(refusal(commit).code, Errc::unsigned_commit);
}

TEST_F(AcceptanceTest, ACommitSignedByAnUnknownKeyIsRefused) {
  auto stranger = eddy::testing::make_ssh_key(dir_ / "keys", "stranger");
  const std::string commit = fleet_.repo().commit_with_key("by a stranger", stranger);
  fetch();
  EXPECT_EQ(refusal(commit).code, Errc::unknown_key);
}

TEST_F(AcceptanceTest, RewrittenHistoryIsRefused) {
  const std::string first = fleet_.repo().head();
  fleet_.set_rollout("app", "1.0", "[10, 100]");
  const std::string accepted = fleet_.repo().commit("second");
  EXPECT_EQ(fetch(), accepted);
  eddy::testing::run_ok({"git", "-C", fleet_.repo().dir().string(), "reset", "-q", "--hard", first});
  fleet_.set_rollout("app", "1.0", "[20, 100]");
  const std::string rewritten = fleet_.repo().commit("rewritten second");
  EXPECT_EQ(fetch(), rewritten);
  auto e = refusal(rewritten, accepted);
  EXPECT_EQ(e.code, Errc::not_descendant);
  EXPECT_TRUE(contains(e.message, accepted.substr(0, 7))) << e.message;
}

TEST_F(AcceptanceTest, AMalformedFleetIsRefusedNamingTheFile) {
  fleet_.repo().write("rollouts/app.yaml", "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n"
                                           "  release: app-1.0\n  stepz: [100]\n");
  const std::string commit = fleet_.repo().commit("typo");
  fetch();
  auto e = refusal(commit);
  EXPECT_EQ(e.code, Errc::invalid_argument);
  EXPECT_TRUE(contains(e.message, "rollouts/app.yaml:6")) << e.message;
}

TEST_F(AcceptanceTest, ARolloutNamingAMissingReleaseIsRefused) {
  fleet_.set_rollout("app", "9.9");
  const std::string commit = fleet_.repo().commit("no such release");
  fetch();
  auto e = refusal(commit);
  EXPECT_TRUE(contains(e.message, "app-9.9")) << e.message;
  EXPECT_TRUE(contains(e.message, "rollouts/app.yaml")) << e.message;
}

TEST_F(AcceptanceTest, MissingAllowedSignersIsNamed) {
  const std::string tip = fetch();
  auto judged = check_fetched_commit(*source_, tip, dir_ / "nope", "");
  ASSERT_FALSE(judged);
  EXPECT_EQ(judged.error().code, Errc::not_found);
  EXPECT_TRUE(contains(judged.error().message, "nope")) << judged.error().message;
}

}  // namespace
}  // namespace eddy::ota
