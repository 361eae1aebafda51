// End-to-end: a real eddyd process follows a real signed fleet repository, installs app
// bundles, probes them, rolls back, and survives SIGKILL in every state of an update.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cstdio>

#include <gtest/gtest.h>

#include "platform/process.hpp"
#include "storage/state_store.hpp"
#include "tests/e2e/device_fixture.hpp"

namespace eddy::testing {
namespace {

TEST_F(DeviceTest, InstallsV1RefusesUnsignedV2AndRollsBackUnhealthyV3) {
  install_v1();
  const std::string accepted_v1 = db_value("accepted_commit");

  fleet_->publish("sensor-app", bundle("2.0.0"), /*sign=*/false);
  auto r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.json.value("outcome", ""), "refused") << r.output;
  EXPECT_NE(r.json.value("message", "").find("not signed"), std::string::npos) << r.output;
  EXPECT_EQ(db_value("accepted_commit"), accepted_v1);
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
  EXPECT_EQ(version_folders(), std::vector<std::string>{"1.0.0"});

  fleet_->publish("sensor-app", bundle("3.0.0", /*healthy=*/false));
  r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.json.value("outcome", ""), "rolled-back") << r.output << device_->log();
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
  EXPECT_TRUE(wait_until([&] { return serving() == "1.0.0\n"; })) << device_->log();

  // The failed release is not retried at the next poll.
  r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");

  auto history = device_->eddy({"history"}).json;
  std::string all = history.dump();
  EXPECT_NE(all.find("refused"), std::string::npos);
  EXPECT_NE(all.find("rolled-back"), std::string::npos);
  EXPECT_NE(all.find("\"probe\":\"health\""), std::string::npos);  // every probe result recorded
}

TEST_F(DeviceTest, GoodV2ReplacesV1AndOperatorRollbackReturnsToV1) {
  install_v1();
  fleet_->publish("sensor-app", bundle("2.0.0"));
  auto r = device_->eddy({"check"});
  ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
  EXPECT_EQ(r.json.value("outcome", ""), "updated");
  EXPECT_TRUE(wait_until([&] { return serving() == "2.0.0\n"; }));
  auto status = device_->status();
  EXPECT_EQ(status["targets"][0].value("previous_version", ""), "1.0.0");

  r = device_->eddy({"rollback"});
  ASSERT_EQ(r.exit_code, 0) << r.output << device_->log();
  EXPECT_EQ(r.json.value("to_version", ""), "1.0.0");
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
  EXPECT_TRUE(wait_until([&] { return serving() == "1.0.0\n"; }));
  // Rolled back by an operator: the next poll does not reinstall 2.0.0.
  r = device_->eddy({"check"});
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0") << r.output;
  // Nothing older to go back to now.
  r = device_->eddy({"rollback"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
}

TEST_F(DeviceTest, RefusedCommitsChangeNothing) {
  install_v1();
  const std::string accepted = db_value("accepted_commit");
  auto before = version_folders();

  struct Case {
    std::string name;
    std::function<void()> make;
    std::string expect;  // in the message
  };
  auto other_key = make_ssh_key(tmp_ / "keys", "stranger");
  std::vector<Case> cases = {
      {"unknown key",
       [&] {
         fleet_->add_bundle("sensor-app", bundle("2.0.0"));
         fleet_->add_release("sensor-app", bundle("2.0.0"));
         fleet_->set_rollout("sensor-app", "2.0.0");
         fleet_->repo().commit_with_key("signed by a stranger", other_key);
       },
       "SHA256:"},
      {"malformed release",
       [&] {
         fleet_->repo().write("releases/broken.yaml", "apiVersion: eddy/v1\nkind: Release\nmetadata: {name: x}\nspec:\n  targt: y\n");
         fleet_->repo().commit("a broken release");
       },
       "releases/broken.yaml:5"},
      {"rewritten history",
       [&] {
         fleet_->repo().remove("releases/broken.yaml");
         run_ok({"git", "reset", "-q", "--hard", accepted}, fleet_->repo().dir());
         fleet_->repo().write("README", "rewritten\n");
         run_ok({"git", "commit", "-q", "--amend", "-S", "-m", "rewritten"}, fleet_->repo().dir(),
                {{"GIT_CONFIG_NOSYSTEM", "1"}, {"HOME", "/nonexistent"}, {"GIT_COMMITTER_NAME", "x"},
                 {"GIT_COMMITTER_EMAIL", "x@example.com"}});
       },
       "does not descend"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    c.make();
    auto r = device_->eddy({"check"});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.json.value("outcome", ""), "refused") << r.output;
    EXPECT_NE(r.json.value("message", "").find(c.expect), std::string::npos) << r.output;
    EXPECT_EQ(db_value("accepted_commit"), accepted);
    EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
    EXPECT_EQ(version_folders(), before);
    EXPECT_EQ(serving(), "1.0.0\n");
  }
}

TEST_F(DeviceTest, BundleThatExpandsPastItsLimitLeavesV1Running) {
  device_->write_config();
  auto cfg = read_file(device_->config_path());
  cfg += "    max_unpacked: 64KiB\n";
  write_file(device_->config_path(), cfg);
  install_v1();
  auto big = bundle("2.0.0");
  big.extra_files["data/zeros"] = std::string(4 << 20, '\0');
  fleet_->publish("sensor-app", big);
  auto r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("expands past the limit"), std::string::npos) << r.output << device_->log();
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
  EXPECT_EQ(version_folders(), std::vector<std::string>{"1.0.0"});
  EXPECT_EQ(serving(), "1.0.0\n");
}

TEST_F(DeviceTest, StatusAndHistoryAnswerWhileIdle) {
  install_v1();
  auto status = device_->status();
  EXPECT_EQ(status["device"].value("id", ""), "test-device");
  EXPECT_EQ(status["source"].value("accepted_commit", ""), fleet_->repo().head());
  auto human = run({eddy_path().string(), "--socket", device_->socket().string(), "status"});
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_NE(human.output.find("1.0.0"), std::string::npos) << human.output;
}

TEST_F(DeviceTest, StepsArePacedByTimeWithoutAHub) {
  // steps [1, 100] with a short bake: this device's place in line (73.4 for "test-device" and
  // "sensor-app") is outside the first step, so it waits until the second step opens a bake
  // after the commit, and eddyd polls again right then by itself (the interval is 1 h). The
  // bake must outlast eddyd's start and the first check: 3 s natively, 45 s under qemu-user on
  // a loaded machine (where 3 s once passed before the check answered).
  const int bake = emulator().empty() ? 3 : 45;
  auto v1 = bundle("1.0.0");
  fleet_->add_bundle("sensor-app", v1);
  fleet_->add_release("sensor-app", v1);
  fleet_->set_rollout("sensor-app", "1.0.0", "[1, 100]\n  bake: " + std::to_string(bake) + "s");
  fleet_->repo().commit("sensor-app 1.0.0 in two steps");
  device_->start();
  auto r = device_->eddy({"check"});
  EXPECT_EQ(r.json.value("outcome", ""), "not-admitted") << r.output << device_->log();
  EXPECT_FALSE(device_->current_version("sensor-app").has_value());
  EXPECT_TRUE(wait_until([&] { return device_->current_version("sensor-app") == "1.0.0"; },
                         std::chrono::seconds(bake + 30)))
      << device_->log();
}

TEST_F(DeviceTest, PollThatFindsNothingNewVerifiesNothingAgain) {
  install_v1();
  auto count = [&] {
    auto store = storage::StateStore::open(device_->data_dir() / "eddy.db");
    auto n = store->database().query_integer("SELECT COUNT(*) FROM transitions");
    return n && *n ? **n : -1;
  };
  auto before = count();
  for (int i = 0; i < 3; ++i) {
    auto r = device_->eddy({"check"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.json.value("outcome", ""), "up-to-date") << r.output;
  }
  EXPECT_EQ(count(), before);
}

TEST_F(DeviceTest, PayloadFromAnHttpUrl) {
  // A plain web server (python's http.server) serves the bundle; the release names its URL.
  int web_port = free_port();
  auto served = tmp_ / "web";
  stdfs::create_directories(served);
  auto server = process::spawn({"python3", "-m", "http.server", std::to_string(web_port), "--bind", "127.0.0.1",
                                "--directory", served.string()},
                               {}, {});
  ASSERT_TRUE(server);
  struct Stop {
    pid_t pid;
    ~Stop() { process::terminate(pid, std::chrono::seconds(5)); }
  } stop{*server};
  ASSERT_TRUE(wait_until([&] { return http_get(web_port, "/").has_value(); }));

  auto v1 = bundle("1.0.0");
  auto rel = fleet_->add_bundle("sensor-app", v1);
  stdfs::rename(fleet_->repo().dir() / rel, served / "sensor-app-1.0.0.tar.zst");
  auto file = served / "sensor-app-1.0.0.tar.zst";
  fleet_->repo().write("releases/sensor-app-1.0.0.yaml",
                       "apiVersion: eddy/v1\nkind: Release\nmetadata: {name: sensor-app-1.0.0}\nspec:\n"
                       "  target: sensor-app\n  version: 1.0.0\n  payload:\n    type: app\n"
                       "    url: http://127.0.0.1:" + std::to_string(web_port) + "/sensor-app-1.0.0.tar.zst\n"
                       "    sha256: " + Fleet::sha256_of(file) + "\n    size: " +
                           std::to_string(stdfs::file_size(file)) + "\n");
  fleet_->set_rollout("sensor-app", "1.0.0");
  fleet_->repo().commit("sensor-app 1.0.0 from a URL");
  device_->start();
  auto r = device_->eddy({"check"});
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0") << r.output << device_->log();
  EXPECT_TRUE(wait_until([&] { return serving() == "1.0.0\n"; }));
}

TEST_F(DeviceTest, PayloadWithAWrongDigestChangesNothing) {
  install_v1();
  auto v2 = bundle("2.0.0");
  fleet_->add_bundle("sensor-app", v2);
  fleet_->add_release("sensor-app", v2);
  auto yaml = read_file(fleet_->repo().dir() / "releases/sensor-app-2.0.0.yaml");
  auto at = yaml.find("sha256: ") + 8;
  yaml.replace(at, 64, std::string(64, 'a'));
  fleet_->repo().write("releases/sensor-app-2.0.0.yaml", yaml);
  fleet_->set_rollout("sensor-app", "2.0.0");
  fleet_->repo().commit("2.0.0 with a wrong digest");
  auto r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.json.value("message", "").find("the release says aaaa"), std::string::npos) << r.output;
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
  EXPECT_EQ(version_folders(), std::vector<std::string>{"1.0.0"});
  EXPECT_EQ(serving(), "1.0.0\n");
  // A bad payload is rejected on this device: the next poll does not download it again.
  r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(DeviceTest, KeyNotAllowedAndTamperedCommitAreRefused) {
  install_v1();
  const std::string accepted = db_value("accepted_commit");

  // A commit object whose message was changed after signing, placed on the branch.
  auto raw = run_ok({"git", "cat-file", "commit", "HEAD"}, fleet_->repo().dir());
  raw.replace(raw.rfind("sensor-app 1.0.0"), 16, "sensor-app 6.6.6");
  {
    process::Options o;
    o.cwd = fleet_->repo().dir();
    o.stdin_data = raw;
    auto h = process::run({"git", "hash-object", "-t", "commit", "-w", "--stdin"}, o);
    ASSERT_TRUE(h && h->exit_code == 0);
    std::string id = h->output.substr(0, 40);
    run_ok({"git", "update-ref", "refs/heads/main", id}, fleet_->repo().dir());
  }
  auto r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.json.value("outcome", ""), "refused") << r.output;
  EXPECT_NE(r.json.value("message", "").find("signature"), std::string::npos) << r.output;
  EXPECT_EQ(db_value("accepted_commit"), accepted);
  run_ok({"git", "update-ref", "refs/heads/main", accepted}, fleet_->repo().dir());

  // The key is listed, but only for another namespace.
  write_file(fleet_->allowed_signers(), "fleet@example.com namespaces=\"file\" " + fleet_->repo().key().public_line + "\n");
  fleet_->publish("sensor-app", bundle("2.0.0"));
  r = device_->eddy({"check"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.json.value("message", "").find("namespaces"), std::string::npos) << r.output;
  EXPECT_EQ(db_value("accepted_commit"), accepted);
  EXPECT_EQ(device_->current_version("sensor-app"), "1.0.0");
  EXPECT_EQ(version_folders(), std::vector<std::string>{"1.0.0"});
}

TEST_F(DeviceTest, SpeaksSystemdNotify) {
  // A datagram socket standing in for systemd's NOTIFY_SOCKET.
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto path = (tmp_ / "notify.sock").string();
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  fleet_->publish("sensor-app", bundle("1.0.0"));
  device_->start({{"NOTIFY_SOCKET", path}, {"WATCHDOG_USEC", "400000"}});
  std::string seen;
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  wait_until(
      [&] {
        char buf[4096];
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) seen.append(buf, static_cast<std::size_t>(n)).append("\n");
        return seen.find("READY=1") != std::string::npos && seen.find("WATCHDOG=1") != std::string::npos &&
               seen.find("STATUS=") != std::string::npos;
      },
      std::chrono::seconds(20));
  ::close(fd);
  EXPECT_NE(seen.find("READY=1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("WATCHDOG=1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("STATUS="), std::string::npos) << seen;
  // Log lines carry syslog priority prefixes for journald.
  EXPECT_NE(device_->log().find("<5>eddyd"), std::string::npos) << device_->log();
}

// ---------------------------------------------------------------------------------------------
// SIGKILL inside every state: each time the device ends on a good version, and history says
// what happened.

class KillInEveryState : public DeviceTest, public ::testing::WithParamInterface<KillCase> {};

TEST_P(KillInEveryState, EndsOnAGoodVersion) {
  const auto& c = GetParam();
  install_v1();
  device_->stop();
  fleet_->publish("sensor-app", bundle("2.0.0", c.healthy_v2));

  // eddyd polls at start-up and is killed at the fault point.
  device_->start({{"EDDY_FAULT_KILL_AT", c.point}}, /*wait_ready=*/false);
  auto status = device_->wait_exit(std::chrono::seconds(60));
  ASSERT_TRUE(status) << "eddyd never reached " << c.point << "\n" << device_->log();
  ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << device_->log();
  device_->kill_session();  // the apps go down with it, as in a power cut

  device_->start();
  auto r = device_->eddy({"check"});
  // A second poll retries an update that the kill interrupted.
  if (device_->current_version("sensor-app") != c.end_version) r = device_->eddy({"check"});
  EXPECT_EQ(device_->current_version("sensor-app"), c.end_version) << r.output << device_->log();
  EXPECT_TRUE(wait_until([&] { return serving() == c.end_version + "\n"; }))
      << "serving " << serving() << "\n" << device_->log();
  auto s = device_->status();
  EXPECT_TRUE(s["update"].is_null()) << s.dump();
  auto history = device_->eddy({"history", "--limit", "200"}).json.dump();
  EXPECT_NE(history.find(c.end_version == "2.0.0" ? "committed" : "rolled-back"), std::string::npos) << history;
}

INSTANTIATE_TEST_SUITE_P(
    States, KillInEveryState,
    ::testing::Values(KillCase{"state:fetched", true, "2.0.0"}, KillCase{"state:verified", true, "2.0.0"},
                      KillCase{"state:admitted", true, "2.0.0"}, KillCase{"state:downloading", true, "2.0.0"},
                      KillCase{"stream:mid", true, "2.0.0"}, KillCase{"state:staged", true, "2.0.0"},
                      KillCase{"state:activating", true, "2.0.0"}, KillCase{"state:probing", true, "2.0.0"},
                      KillCase{"state:committed", true, "2.0.0"}, KillCase{"state:rolling-back", false, "1.0.0"},
                      KillCase{"state:rolled-back", false, "1.0.0"}),
    kill_case_name);

}  // namespace
}  // namespace eddy::testing
