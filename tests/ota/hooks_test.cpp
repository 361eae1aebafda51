#include "ota/hooks.hpp"

#include <gtest/gtest.h>

#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using namespace std::chrono_literals;

using eddy::testing::contains;

const std::map<std::string, std::string> env = {
    {"EDDY_TARGET", "sensor-app"}, {"EDDY_VERSION", "1.4.2"}, {"EDDY_PREVIOUS_VERSION", "1.4.1"}};

TEST(Hooks, RunInOrderInTheAppDirectoryWithTheEnvironment) {
  eddy::testing::TempDir dir;
  auto s = run_hooks({{"sh", "-c", "echo \"$EDDY_TARGET $EDDY_PREVIOUS_VERSION->$EDDY_VERSION\" >> log"},
                      {"sh", "-c", "echo second >> log"}},
                     "pre-activate", dir.path(), 5s, env);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(eddy::testing::read_file(dir / "log"), "sensor-app 1.4.1->1.4.2\nsecond\n");
}

TEST(Hooks, NoCommandsIsFine) {
  EXPECT_TRUE(run_hooks({}, "rollback", {}, 1s, env));
}

TEST(Hooks, FirstFailureStopsAndIsNamed) {
  eddy::testing::TempDir dir;
  auto s = run_hooks({{"sh", "-c", "echo one >> log"},
                      {"sh", "-c", "echo 'migration 0042 failed: table locked'; exit 2"},
                      {"sh", "-c", "echo three >> log"}},
                     "pre-activate", dir.path(), 5s, env);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::process);
  EXPECT_TRUE(contains(s.error().message, "hook pre-activate")) << s.error().message;
  EXPECT_TRUE(contains(s.error().message, "status 2")) << s.error().message;
  EXPECT_TRUE(contains(s.error().message, "migration 0042 failed: table locked")) << s.error().message;
  EXPECT_EQ(eddy::testing::read_file(dir / "log"), "one\n");
}

TEST(Hooks, TimeoutIsAnError) {
  auto s = run_hooks({{"sh", "-c", "exec sleep 30"}}, "post-activate", {}, 100ms, env);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::timeout);
  EXPECT_TRUE(contains(s.error().message, "hook post-activate")) << s.error().message;
  EXPECT_TRUE(contains(s.error().message, "sleep 30")) << s.error().message;
}

TEST(Hooks, CommandThatCannotStart) {
  eddy::testing::TempDir dir;
  auto s = run_hooks({{"bin/migrate"}}, "pre-commit", dir.path(), 1s, env);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::process);
  EXPECT_TRUE(contains(s.error().message, "hook pre-commit")) << s.error().message;
  EXPECT_TRUE(contains(s.error().message, "bin/migrate")) << s.error().message;
}

TEST(Hooks, EmptyCommandIsRefused) {
  auto s = run_hooks({{}}, "rollback", {}, 1s, env);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(s.error().message, "hook rollback")) << s.error().message;
}

}  // namespace
}  // namespace eddy::ota
