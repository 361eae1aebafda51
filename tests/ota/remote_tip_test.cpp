#include "ota/remote_tip.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <thread>

#include "tests/support/git_servers.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using namespace eddy::testing;

std::string git(const stdfs::path& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {"git", "-C", dir.string()});
  auto out = run_ok(args);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// A server on loopback that answers the first connection with `reply` (once it has read the
// request) and closes: a misbehaving Git server.
class CannedServer {
 public:
  explicit CannedServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("cannot listen on loopback");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      char buffer[4096];
      (void)::recv(client, buffer, sizeof buffer, 0);  // the request (one segment on loopback)
      (void)::send(client, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      ::shutdown(client, SHUT_WR);
      while (::recv(client, buffer, sizeof buffer, 0) > 0) {
      }
      ::close(client);
    });
  }
  ~CannedServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  CannedServer(const CannedServer&) = delete;
  CannedServer& operator=(const CannedServer&) = delete;
  int port() const { return port_; }

 private:
  std::string reply_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

std::string pkt(const std::string& payload) {
  char head[5];
  std::snprintf(head, sizeof head, "%04zx", payload.size() + 4);
  return head + payload;
}

const std::string kId1(40, 'a');
const std::string kId2(40, 'b');
std::string first_ref(const std::string& id, const std::string& ref) {
  return pkt(id + " " + ref + std::string(1, '\0') + "multi_ack side-band-64k\n");
}

// --- Against real servers: file://, git daemon, lighttpd + git http-backend ---

class RemoteTipTest : public ::testing::TestWithParam<std::string> {
 protected:
  RemoteTipTest() : key(make_ssh_key(tmp / "keys", "fleet")), upstream(tmp.path() / "served" / "fleet", key) {}

  std::string serve() {
    if (GetParam() == "git") {
      daemon = std::make_unique<GitDaemonServer>(tmp / "served", tmp / "daemon");
      return daemon->url("fleet");
    }
    if (GetParam() == "http") {
      http = std::make_unique<GitHttpServer>(tmp / "served", tmp / "http");
      return http->url("fleet");
    }
    return upstream.url();
  }

  TempDir tmp;
  SshKey key;
  SignedRepo upstream;
  std::unique_ptr<GitDaemonServer> daemon;
  std::unique_ptr<GitHttpServer> http;
};

TEST_P(RemoteTipTest, FollowsTheBranchThroughNewCommitsForcePushesAndPackedRefs) {
  const std::string first = upstream.commit("first");
  git(upstream.dir(), {"branch", "-q", "other"});
  const std::string url = serve();
  auto tip = remote_tip(url, "main");
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, first);

  const std::string second = upstream.commit("second");
  tip = remote_tip(url, "main");
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, second);
  EXPECT_EQ(*remote_tip(url, "other"), first);

  // Rewritten history: the tip is whatever the branch names now.
  git(upstream.dir(), {"reset", "-q", "--hard", first});
  const std::string rewritten = upstream.commit("rewritten");
  tip = remote_tip(url, "main");
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, rewritten);

  // Refs packed (loose files gone), then a branch moved again (loose beside packed).
  git(upstream.dir(), {"pack-refs", "--all", "--prune"});
  ASSERT_FALSE(stdfs::exists(upstream.dir() / ".git/refs/heads/main"));
  tip = remote_tip(url, "main");
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, rewritten);
  const std::string third = upstream.commit("third");
  EXPECT_EQ(*remote_tip(url, "main"), third);
  EXPECT_EQ(*remote_tip(url, "other"), first);
}

TEST_P(RemoteTipTest, MissingBranchIsNotFoundNamingBranchAndUrl) {
  upstream.commit("first");
  const std::string url = serve();
  for (std::string branch : {"production", "mai", "main/x"}) {
    auto tip = remote_tip(url, branch);
    ASSERT_FALSE(tip) << branch;
    EXPECT_EQ(tip.error().code, Errc::not_found) << tip.error().message;
    EXPECT_NE(tip.error().message.find(branch), std::string::npos) << tip.error().message;
    EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
  }
}

TEST_P(RemoteTipTest, MissingRepositoryIsAnError) {
  upstream.commit("first");
  std::string url = serve();
  url.replace(url.rfind("fleet"), 5, "no-such-repo");
  auto tip = remote_tip(url, "main");
  ASSERT_FALSE(tip);
  EXPECT_TRUE(tip.error().code == Errc::not_found || tip.error().code == Errc::network) << tip.error().message;
  EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
}

INSTANTIATE_TEST_SUITE_P(Transports, RemoteTipTest, ::testing::Values("file", "git", "http"),
                         [](const auto& param_info) { return param_info.param; });

TEST(RemoteTip, BareRepositoryOverFile) {
  TempDir tmp;
  auto key = make_ssh_key(tmp / "keys", "fleet");
  SignedRepo repo(tmp.path() / "work", key);
  const std::string head = repo.commit("first");
  run_ok({"git", "clone", "-q", "--bare", repo.dir().string(), (tmp / "bare.git").string()});
  auto tip = remote_tip("file://" + (tmp / "bare.git").string(), "main");
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, head);
  auto missing = remote_tip("file://" + (tmp / "nothing").string(), "main");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found) << missing.error().message;
  auto plain = remote_tip("file://" + tmp.path().string(), "main");  // a folder, not a repository
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, Errc::unsupported) << plain.error().message;
}

// --- What the resident does not read: the worker fetches ---

TEST(RemoteTip, OtherTransportsAndOddBranchesAreRefused) {
  for (std::string url : {"https://git.example.com/fleet.git", "ssh://git@example.com/fleet.git", "ftp://x/y"}) {
    auto tip = remote_tip(url, "main");
    ASSERT_FALSE(tip) << url;
    EXPECT_EQ(tip.error().code, Errc::unsupported) << tip.error().message;
    EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
  }
  for (std::string branch : {"", "../../etc/passwd", "a..b", "/main", "main/", "ma in", "x.lock", "a\nb"}) {
    auto tip = remote_tip("file:///nonexistent", branch);
    ASSERT_FALSE(tip) << branch;
    EXPECT_EQ(tip.error().code, Errc::invalid_argument) << tip.error().message;
  }
}

TEST(RemoteTip, ClosedPortAndSilentServer) {
  for (std::string scheme : {"git", "http"}) {
    std::string url = scheme + "://127.0.0.1:" + std::to_string(free_port()) + "/fleet";
    auto tip = remote_tip(url, "main");
    ASSERT_FALSE(tip) << scheme;
    EXPECT_EQ(tip.error().code, Errc::network) << tip.error().message;
    EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
  }
  SilentListener silent;
  for (std::string scheme : {"git", "http"}) {
    std::string url = scheme + "://127.0.0.1:" + std::to_string(silent.port()) + "/fleet";
    auto tip = remote_tip(url, "main", std::chrono::milliseconds(300));
    ASSERT_FALSE(tip) << scheme;
    EXPECT_EQ(tip.error().code, Errc::timeout) << tip.error().message;
    EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
  }
}

// --- Malformed advertisements from a server that answers git:// or http:// ---

// A canned server answer that remote_tip must refuse with `code`, saying `says`.
struct RefusalCase {
  std::string name;
  std::string reply;
  Errc code;
  std::string says;
};

// Each case against a server answering its reply on `scheme`://127.0.0.1:<port>`path`: refused
// with the case's code, and the message says what and names the URL.
void expect_refusals(const std::vector<RefusalCase>& cases, const std::string& scheme, const std::string& path) {
  for (const auto& c : cases) {
    CannedServer server(c.reply);
    const std::string url = scheme + "://127.0.0.1:" + std::to_string(server.port()) + path;
    auto tip = remote_tip(url, "main", std::chrono::seconds(20));
    ASSERT_FALSE(tip) << c.name << ": " << *tip;
    EXPECT_EQ(tip.error().code, c.code) << c.name << ": " << tip.error().message;
    EXPECT_NE(tip.error().message.find(c.says), std::string::npos) << c.name << ": " << tip.error().message;
    EXPECT_NE(tip.error().message.find(url), std::string::npos) << c.name << ": " << tip.error().message;
  }
}

TEST(RemoteTip, MalformedGitAdvertisementsAreClearErrors) {
  const std::vector<RefusalCase> cases = {
      {"bad length", "zzzz" + kId1 + " refs/heads/main\n", Errc::network, "pkt-line length"},
      {"impossible length", "0002", Errc::network, "impossible length"},
      {"truncated", first_ref(kId1, "refs/heads/main").substr(0, 30), Errc::network, "closed the connection"},
      {"no flush", first_ref(kId1, "refs/heads/main"), Errc::network, "closed the connection"},
      {"no capabilities", pkt(kId1 + " refs/heads/main\n") + "0000", Errc::network, "capabilities"},
      {"short id", first_ref("abc", "refs/heads/main") + "0000", Errc::network, "<id> <ref>"},
      {"upper-case id", first_ref(std::string(40, 'A'), "refs/heads/main") + "0000", Errc::network, "<id> <ref>"},
      {"listed twice", first_ref(kId1, "refs/heads/main") + pkt(kId2 + " refs/heads/main\n") + "0000",
       Errc::network, "twice"},
      {"server error", pkt("ERR access denied or repository not exported: /fleet\n"), Errc::network,
       "access denied"},
      {"no branch", first_ref(kId1, "refs/heads/other") + "0000", Errc::not_found, "no branch main"},
      {"empty repository", first_ref(std::string(40, '0'), "capabilities^{}") + "0000", Errc::not_found,
       "no branch main"},
  };
  expect_refusals(cases, "git", "/fleet");
  // Well formed, with a shallow line and other refs: found.
  CannedServer good(first_ref(kId2, "HEAD") + pkt(kId1 + " refs/heads/main\n") + pkt(kId2 + " refs/tags/v1\n") +
                    pkt("shallow " + kId2 + "\n") + "0000");
  auto tip = remote_tip("git://127.0.0.1:" + std::to_string(good.port()) + "/fleet", "main", std::chrono::seconds(20));
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, kId1);
}

TEST(RemoteTip, HttpAnswersThatAreNotASmartAdvertisementAreErrors) {
  auto response = [](const std::string& status, const std::string& type, const std::string& body) {
    return "HTTP/1.1 " + status + "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  };
  const std::string smart = "application/x-git-upload-pack-advertisement";
  const std::string good_body = pkt("# service=git-upload-pack\n") + "0000" + first_ref(kId1, "refs/heads/main") + "0000";
  const std::vector<RefusalCase> cases = {
      {"dumb server", response("200 OK", "text/plain", kId1 + "\trefs/heads/main\n"), Errc::unsupported,
       "not a smart Git HTTP server"},
      {"not found", response("404 Not Found", "text/plain", "no"), Errc::not_found, "404"},
      {"forbidden", response("403 Forbidden", "text/plain", "no"), Errc::network, "403"},
      {"no service line", response("200 OK", smart, first_ref(kId1, "refs/heads/main") + "0000"), Errc::network,
       "service=git-upload-pack"},
      {"cut short", response("200 OK", smart, good_body).substr(0, 150), Errc::network, "closed the connection"},
      {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n", Errc::network, "malformed HTTP response"},
      {"trailing bytes", response("200 OK", smart, good_body + "0008abcd"), Errc::network, "after its closing"},
  };
  expect_refusals(cases, "http", "/git/fleet");
  CannedServer good(response("200 OK", smart + "; charset=binary", good_body));
  auto tip = remote_tip("http://127.0.0.1:" + std::to_string(good.port()) + "/git/fleet/", "main",
                        std::chrono::seconds(20));
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, kId1);
}

TEST(RemoteTip, AdvertisementTooLargeIsRefused) {
  std::string reply = first_ref(kId1, "refs/heads/main");
  while (reply.size() <= kMaxAdvertisementBytes) reply += pkt(kId2 + " refs/tags/" + std::string(900, 't') + "\n");
  reply += "0000";
  CannedServer server(reply);
  auto tip = remote_tip("git://127.0.0.1:" + std::to_string(server.port()) + "/fleet", "main", std::chrono::seconds(20));
  ASSERT_FALSE(tip);
  EXPECT_EQ(tip.error().code, Errc::too_large) << tip.error().message;
}

}  // namespace
}  // namespace eddy::ota
