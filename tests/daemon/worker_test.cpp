// The update worker eddyd-worker (daemon/worker/) on its own: this test plays eddyd on the
// other end of its socket.
#include "daemon/worker/worker.hpp"

#include <sys/socket.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "daemon/version.hpp"
#include "daemon/worker_protocol.hpp"
#include "platform/line_channel.hpp"
#include "platform/process.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {
namespace {

using nlohmann::json;
namespace wp = daemon::worker_protocol;

struct Conversation {
  std::vector<json> lines;  // everything the worker said, in order
  int exit_status = -1;     // raw wait status
};

// Start the real worker with a socketpair as its descriptor 3, send `job_line`, read until it
// closes the socket, reap it.
Conversation converse(const std::string& job_line) {
  int pair[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd theirs(pair[1]);
  auto pid =
      process::spawn(with_emulator({eddyd_worker_path().string(), "--socket-fd", "3"}), {}, {}, -1, theirs.get());
  EXPECT_TRUE(pid) << (pid ? "" : pid.error().message);
  theirs.reset();
  LineChannel channel(UniqueFd(pair[0]), "worker");
  Conversation c;
  EXPECT_TRUE(channel.write(job_line));
  for (;;) {
    auto line = channel.read();
    if (!line || !*line) break;
    c.lines.push_back(json::parse(**line, nullptr, false));
  }
  if (pid) ::waitpid(*pid, &c.exit_status, 0);
  return c;
}

wp::Job job(const std::string& config) {
  wp::Job j;
  j.version = std::string(daemon::version());
  j.kind = "poll";
  j.config_file = "/etc/eddy/eddyd.yaml";
  j.config = config;
  j.eddyd_pid = ::getpid();
  return j;
}

TEST(WorkerTest, RefusesAJobFromAnotherVersionOfEddyd) {
  auto j = job("device: {id: d}\n");
  j.version = "0.0.1";
  auto c = converse(wp::to_line(wp::job_json(j)));
  ASSERT_EQ(c.lines.size(), 1u);
  auto e = wp::error_from_json(c.lines[0].value("error", json()));
  EXPECT_EQ(e.code, Errc::conflict);
  EXPECT_NE(e.message.find("eddyd 0.0.1"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("restart eddyd"), std::string::npos) << e.message;
  EXPECT_TRUE(WIFEXITED(c.exit_status) && WEXITSTATUS(c.exit_status) == 0);
}

TEST(WorkerTest, ABadJobOrConfigurationIsAnErrorThatNamesIt) {
  auto c = converse(R"({"job":"poll"})");
  ASSERT_EQ(c.lines.size(), 1u);
  auto e = wp::error_from_json(c.lines[0].value("error", json()));
  EXPECT_EQ(e.code, Errc::invalid_argument);
  EXPECT_NE(e.message.find("the job from eddyd"), std::string::npos) << e.message;

  c = converse(wp::to_line(wp::job_json(job("device: {id: d}\nsource: {url: [\n"))));
  ASSERT_EQ(c.lines.size(), 1u);
  e = wp::error_from_json(c.lines[0].value("error", json()));
  EXPECT_EQ(e.code, Errc::invalid_argument);
  EXPECT_TRUE(e.message.starts_with("/etc/eddy/eddyd.yaml:")) << e.message;
}

TEST(WorkerTest, DoesNothingForAnEddydThatIsGone) {
  // The pid in the job is not its parent's: eddyd died before the worker could watch it.
  auto j = job("device: {id: d}\n");
  j.eddyd_pid = 1;
  auto c = converse(wp::to_line(wp::job_json(j)));
  EXPECT_TRUE(c.lines.empty());
  EXPECT_TRUE(WIFEXITED(c.exit_status) && WEXITSTATUS(c.exit_status) == 1);
}

TEST(WorkerTest, SaysWhatItIsWhenStartedByHand) {
  auto r = run({eddyd_worker_path().string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("eddyd starts it"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace eddy::testing
