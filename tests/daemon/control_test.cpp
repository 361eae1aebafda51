#include "daemon/control_server.hpp"

#include <grp.h>
#include <sys/stat.h>

#include <future>

#include "platform/unix_socket_client.hpp"
#include "tests/daemon/control_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using eddy::Errc;
using eddy::testing::ControlServerFixture;
using eddy::testing::RawClient;
using nlohmann::json;

json ask(const std::filesystem::path& socket, const json& request) {
  auto reply = eddy::unix_socket_request(socket, request.dump(), 20s);
  if (!reply) return {{"transport_error", reply.error().message}};
  return json::parse(*reply);
}

class ControlServerTest : public ControlServerFixture {};

TEST_F(ControlServerTest, StatusHistoryCheckRollback) {
  start();
  auto status = ask(socket_path(), {{"command", "status"}});
  EXPECT_EQ(status, (json{{"ok", true}, {"result", handler_.status_result}}));

  auto history = ask(socket_path(), {{"command", "history"}, {"limit", 7}});
  ASSERT_TRUE(history["ok"].get<bool>()) << history;
  EXPECT_EQ(history["result"]["entries"].size(), 3u);
  EXPECT_EQ(handler_.last_history_limit.load(), 7);
  ask(socket_path(), {{"command", "history"}});
  EXPECT_EQ(handler_.last_history_limit.load(), 50) << "the default limit";

  auto check = ask(socket_path(), {{"command", "check"}});
  EXPECT_EQ(check, (json{{"ok", true}, {"result", *handler_.check_result}}));

  auto rollback = ask(socket_path(), {{"command", "rollback"}, {"target", "sensor-app"}});
  EXPECT_EQ(rollback, (json{{"ok", true}, {"result", *handler_.rollback_result}}));
  EXPECT_EQ(handler_.rollback_target(), "sensor-app");
  ask(socket_path(), {{"command", "rollback"}});
  EXPECT_EQ(handler_.rollback_target(), "") << "target is optional";
}

TEST_F(ControlServerTest, HandlerErrorsBecomeErrorReplies) {
  handler_.set_rollback_result(eddy::make_error(Errc::conflict, "an update of sensor-app is running"));
  handler_.throw_in_status = true;
  start();
  auto rollback = ask(socket_path(), {{"command", "rollback"}, {"target", "sensor-app"}});
  EXPECT_EQ(rollback, (json{{"ok", false},
                            {"error", {{"code", "conflict"}, {"message", "an update of sensor-app is running"}}}}));
  auto status = ask(socket_path(), {{"command", "status"}});
  EXPECT_FALSE(status["ok"].get<bool>());
  EXPECT_EQ(status["error"]["code"], "internal");
}

TEST_F(ControlServerTest, MalformedRequestsGetErrorsAndTheConnectionGoesOn) {
  start();
  RawClient client(socket_path());
  ASSERT_TRUE(client.connected());
  struct Case {
    std::string line;
    std::string needle;
  };
  std::vector<Case> cases{
      {"this is not json", "not valid JSON"},
      {"[1,2,3]", "must be a JSON object"},
      {"{\"cmd\":\"status\"}", "no \"command\""},
      {"{\"command\":42}", "no \"command\""},
      {"{\"command\":\"stats\"}", "unknown command \"stats\""},
      {"{\"command\":\"history\",\"limit\":\"ten\"}", "\"limit\" must be a whole number"},
      {"{\"command\":\"history\",\"limit\":0}", "\"limit\" must be a whole number"},
      {"{\"command\":\"rollback\",\"target\":5}", "\"target\" must be a string"},
      {"{\"command\":\"status\",\"verbose\":true}", "unknown field \"verbose\""},
      {"{\"command\":\"status\"", "not valid JSON"},
      {std::string("\xff\xfe{}", 4), "not valid JSON"},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(client.send(c.line + "\n"));
    auto reply = json::parse(client.read_line(), nullptr, false);
    ASSERT_FALSE(reply.is_discarded()) << c.line;
    EXPECT_FALSE(reply["ok"].get<bool>()) << c.line;
    EXPECT_EQ(reply["error"]["code"], "invalid-argument") << c.line;
    EXPECT_NE(reply["error"]["message"].get<std::string>().find(c.needle), std::string::npos)
        << c.line << " -> " << reply;
  }
  // Empty lines are skipped; CRLF works; the same connection still serves.
  ASSERT_TRUE(client.send("\n\r\n{\"command\":\"status\"}\r\n"));
  auto reply = json::parse(client.read_line());
  EXPECT_TRUE(reply["ok"].get<bool>()) << reply;
}

TEST_F(ControlServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawClient client(socket_path());
  ASSERT_TRUE(client.send("{\"command\":\"history\",\"limit\":1}\n{\"command\":\"status\"}\n{\"command\":\"check\"}\n"));
  EXPECT_TRUE(json::parse(client.read_line())["result"].contains("entries"));
  EXPECT_TRUE(json::parse(client.read_line())["result"].contains("device"));
  EXPECT_TRUE(json::parse(client.read_line())["result"].contains("outcome"));
}

TEST_F(ControlServerTest, OversizedRequestIsRefused) {
  start();
  RawClient client(socket_path());
  std::string huge = "{\"command\":\"status\",\"pad\":\"" + std::string(100 * 1024, 'x') + "\"}\n";
  client.send(huge);  // the server may close before reading it all
  auto reply = json::parse(client.read_line(), nullptr, false);
  ASSERT_FALSE(reply.is_discarded());
  EXPECT_FALSE(reply["ok"].get<bool>());
  EXPECT_EQ(reply["error"]["code"], "too-large");
  EXPECT_TRUE(client.closed_by_peer());

  // Without a newline at all, too.
  RawClient endless(socket_path());
  endless.send(std::string(70 * 1024, '{'));
  reply = json::parse(endless.read_line(), nullptr, false);
  ASSERT_FALSE(reply.is_discarded());
  EXPECT_EQ(reply["error"]["code"], "too-large");

  // A request just under the limit is fine.
  std::string padded = "{\"command\":\"status\"}";
  padded += std::string(64 * 1024 - padded.size(), ' ');
  RawClient fine(socket_path());
  fine.send(padded + "\n");
  EXPECT_TRUE(json::parse(fine.read_line())["ok"].get<bool>());

  EXPECT_TRUE(ask(socket_path(), {{"command", "status"}})["ok"].get<bool>()) << "the server lives on";
}

TEST_F(ControlServerTest, SeveralClientsAtOnce) {
  start();
  std::vector<RawClient> clients;
  clients.reserve(8);
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back(socket_path());
    ASSERT_TRUE(clients.back().connected());
  }
  // All connected at once; answer them in reverse order of connection.
  for (int i = 7; i >= 0; --i) {
    auto& client = clients[static_cast<std::size_t>(i)];
    ASSERT_TRUE(client.send("{\"command\":\"status\"}\n"));
    EXPECT_TRUE(json::parse(client.read_line())["ok"].get<bool>());
  }
  // And from threads, concurrently.
  std::vector<std::future<int>> results;
  for (int t = 0; t < 8; ++t)
    results.push_back(std::async(std::launch::async, [&] {
      int ok = 0;
      for (int i = 0; i < 25; ++i) ok += ask(socket_path(), {{"command", "status"}}).value("ok", false) ? 1 : 0;
      return ok;
    }));
  for (auto& result : results) EXPECT_EQ(result.get(), 25);
}

TEST_F(ControlServerTest, BlockingCheckDoesNotBlockStatus) {
  handler_.block_check = true;
  start();
  auto check = std::async(std::launch::async, [&] { return ask(socket_path(), {{"command", "check"}}); });
  ASSERT_TRUE(eddy::testing::wait_until([&] { return handler_.check_entered.load(); }));
  // While check() blocks on its worker thread, the loop still answers other clients.
  auto status = ask(socket_path(), {{"command", "status"}});
  EXPECT_TRUE(status["ok"].get<bool>()) << status;
  EXPECT_EQ(check.wait_for(0s), std::future_status::timeout) << "check replied before it was released";
  handler_.release_check();
  auto result = check.get();
  EXPECT_EQ(result, (json{{"ok", true}, {"result", *handler_.check_result}}));
}

TEST_F(ControlServerTest, ClientLeavingDuringCheckDoesNotHurt) {
  handler_.block_check = true;
  start();
  {
    RawClient client(socket_path());
    ASSERT_TRUE(client.send("{\"command\":\"check\"}\n"));
    ASSERT_TRUE(eddy::testing::wait_until([&] { return handler_.check_entered.load(); }));
  }  // gone before the reply
  handler_.release_check();
  EXPECT_TRUE(ask(socket_path(), {{"command", "status"}})["ok"].get<bool>());
}

TEST_F(ControlServerTest, SocketModeParentFolderAndGroup) {
  const group* daemon_group = ::getgrnam("daemon");
  if (!daemon_group) GTEST_SKIP() << "no group `daemon` on this machine";
  gid_t gid = daemon_group->gr_gid;
  eddy::daemon::ControlServerOptions options;
  options.socket = dir_ / "new/deeper/eddyd.sock";
  options.group = "daemon";
  start(options);
  struct stat info{};
  ASSERT_EQ(::stat(options.socket.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 07777, 0660u);
  EXPECT_EQ(info.st_gid, gid);
  struct stat folder{};
  ASSERT_EQ(::stat(options.socket.parent_path().c_str(), &folder), 0);
  EXPECT_EQ(folder.st_mode & 07777, 0750u);
  EXPECT_EQ(folder.st_gid, gid) << "members of the group must reach the socket";
  EXPECT_TRUE(ask(options.socket, {{"command", "status"}})["ok"].get<bool>());
}

TEST_F(ControlServerTest, UnknownGroupIsAnErrorNamingIt) {
  eddy::daemon::ControlServerOptions options;
  options.socket = socket_path();
  options.group = "no-such-group-eddy";
  auto server = eddy::daemon::ControlServer::start(loop_, options, handler_);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, Errc::not_found);
  EXPECT_NE(server.error().message.find("no-such-group-eddy"), std::string::npos) << server.error().message;
}

TEST_F(ControlServerTest, StaleSocketIsReplacedLiveOneAndOtherFilesAreNot) {
  // A socket file left by a process that died.
  std::filesystem::create_directories(socket_path().parent_path());
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path().c_str(), sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    ::close(fd);
  }
  ASSERT_TRUE(std::filesystem::exists(socket_path()));
  start();
  EXPECT_TRUE(ask(socket_path(), {{"command", "status"}})["ok"].get<bool>());

  // A second server on the same path while the first listens: refused, first untouched.
  eddy::EventLoop other_loop;
  eddy::daemon::ControlServerOptions options;
  options.socket = socket_path();
  auto second = eddy::daemon::ControlServer::start(other_loop, options, handler_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::conflict);
  EXPECT_NE(second.error().message.find("already running"), std::string::npos) << second.error().message;
  EXPECT_TRUE(ask(socket_path(), {{"command", "status"}})["ok"].get<bool>());

  // A regular file in the way is not deleted.
  eddy::testing::write_file(dir_ / "in-the-way", "precious");
  options.socket = dir_ / "in-the-way";
  auto third = eddy::daemon::ControlServer::start(other_loop, options, handler_);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, Errc::conflict);
  EXPECT_EQ(eddy::testing::read_file(dir_ / "in-the-way"), "precious");
}

TEST_F(ControlServerTest, SocketFileIsRemovedWhenTheServerStops) {
  start();
  ASSERT_TRUE(std::filesystem::exists(socket_path()));
  loop_.stop();
  thread_.join();
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(socket_path()));
  auto reply = eddy::unix_socket_request(socket_path(), "{\"command\":\"status\"}", 5s);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, Errc::not_found);
}

TEST_F(ControlServerTest, TooLongSocketPathIsRefused) {
  eddy::daemon::ControlServerOptions options;
  options.socket = dir_ / std::string(120, 'a');
  auto server = eddy::daemon::ControlServer::start(loop_, options, handler_);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, Errc::invalid_argument);
}

}  // namespace
