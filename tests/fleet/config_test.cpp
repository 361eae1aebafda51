// eddy-hub's configuration (fleet/config.hpp) and token files (fleet/tokens.hpp): a good file
// with every key, each kind of bad one with a message naming file, line and what to do, and
// what --check-config finds in the files it names.
#include "fleet/config.hpp"

#include <gtest/gtest.h>

#include "fleet/tokens.hpp"
#include "tests/support/support.hpp"

namespace eddy::fleet {
namespace {

using eddy::testing::contains;
using eddy::testing::TempDir;
using eddy::testing::write_file;

constexpr const char* kMinimal =
    "listen: 127.0.0.1:8080\n"
    "source: {url: file:///srv/fleet.git, allowed_signers: allowed_signers}\n"
    "devices: {tokens: device-tokens}\n"
    "operators: {tokens: operator-tokens}\n";

Error parse_error(const std::string& yaml) {
  auto c = parse_hub_config(yaml, "/etc/eddy/hub.yaml");
  EXPECT_FALSE(c) << yaml;
  return c ? Error{Errc::internal, "parsed"} : c.error();
}

TEST(HubConfigTest, EveryKeyIsRead) {
  auto c = parse_hub_config(
      "listen: \"0.0.0.0:8443\"\n"
      "tls: {cert: tls/hub.crt, key: /etc/eddy/hub.key}\n"
      "source: {url: \"https://git.example.com/fleet.git\", branch: production, interval: 45s,\n"
      "         allowed_signers: /etc/eddy/allowed_signers}\n"
      "data_dir: data\n"
      "devices: {tokens: /etc/eddy/device-tokens}\n"
      "operators: {tokens: operator-tokens}\n"
      "tick: 2s\n"
      "webhooks:\n"
      "  - {url: \"https://chat.example.com/hook\", events: [step, halt]}\n"
      "  - {url: \"http://127.0.0.1:9000/all\"}\n"
      "log_level: debug\n",
      "/etc/eddy/hub.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen, "0.0.0.0:8443");
  EXPECT_EQ(c->tls_cert, "/etc/eddy/tls/hub.crt");
  EXPECT_EQ(c->tls_key, "/etc/eddy/hub.key");
  EXPECT_EQ(c->source_url, "https://git.example.com/fleet.git");
  EXPECT_EQ(c->source_branch, "production");
  EXPECT_EQ(c->source_interval, std::chrono::seconds(45));
  EXPECT_EQ(c->data_dir, "/etc/eddy/data");
  EXPECT_EQ(c->device_tokens, "/etc/eddy/device-tokens");
  EXPECT_EQ(c->operator_tokens, "/etc/eddy/operator-tokens");
  EXPECT_EQ(c->tick, std::chrono::seconds(2));
  ASSERT_EQ(c->webhooks.size(), 2u);
  EXPECT_EQ(c->webhooks[0].events, (std::vector<std::string>{"step", "halt"}));
  EXPECT_EQ(c->webhooks[1].events, (std::vector<std::string>{"step", "halt", "complete", "rollback"}));
  EXPECT_EQ(c->log_level, "debug");
}

TEST(HubConfigTest, DefaultsFillWhatIsLeftOut) {
  auto c = parse_hub_config(kMinimal, "/etc/eddy/hub.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->source_branch, "main");
  EXPECT_EQ(c->source_interval, std::chrono::seconds(30));
  EXPECT_EQ(c->tick, std::chrono::seconds(5));
  EXPECT_EQ(c->data_dir, "/var/lib/eddy-hub");
  EXPECT_EQ(c->allowed_signers, "/etc/eddy/allowed_signers");
  EXPECT_TRUE(c->tls_cert.empty());
  EXPECT_TRUE(c->webhooks.empty());
}

struct BadCase {
  const char* name;
  std::string yaml;
  std::vector<std::string> message_has;
};

TEST(HubConfigTest, BadConfigurationsAreRefusedWithFileLineAndWhatToDo) {
  const std::string m = kMinimal;
  const std::vector<BadCase> cases = {
      {"unknown key", m + "tick: 1s\nticks: 2s\n", {"hub.yaml:6:", "unknown key `ticks`", "known keys"}},
      {"misplaced key", m + "branch: main\n", {"hub.yaml:5:", "belongs under `source`"}},
      {"key twice", m + "tick: 1s\ntick: 2s\n", {"hub.yaml:6:", "twice"}},
      {"no listen",
       "source: {url: file:///x, allowed_signers: a}\ndevices: {tokens: d}\noperators: {tokens: o}\n",
       {"no `listen`"}},
      {"no source", "listen: 127.0.0.1:1\ndevices: {tokens: d}\noperators: {tokens: o}\n", {"no `source`"}},
      {"no device tokens",
       "listen: 127.0.0.1:1\nsource: {url: file:///x, allowed_signers: a}\noperators: {tokens: o}\n",
       {"devices: {tokens: FILE}"}},
      {"no operator tokens",
       "listen: 127.0.0.1:1\nsource: {url: file:///x, allowed_signers: a}\ndevices: {tokens: d}\n",
       {"operators: {tokens: FILE}"}},
      {"plain HTTP off loopback",
       "listen: 0.0.0.0:8080\nsource: {url: file:///x, allowed_signers: a}\ndevices: {tokens: d}\n"
       "operators: {tokens: o}\n",
       {"hub.yaml:1:", "not a loopback address", "tls"}},
      {"tls without key", m + "tls: {cert: a.crt}\n", {"hub.yaml:5:", "both `cert` and `key`"}},
      {"source without signers",
       "listen: 127.0.0.1:1\nsource: {url: file:///x}\ndevices: {tokens: d}\noperators: {tokens: o}\n",
       {"hub.yaml:2:", "allowed_signers"}},
      {"scp-like url",
       "listen: 127.0.0.1:1\nsource: {url: \"git@host:fleet.git\", allowed_signers: a}\ndevices: {tokens: d}\n"
       "operators: {tokens: o}\n",
       {"hub.yaml:2:", "ssh://"}},
      {"bad interval", m + "tick: 5\n", {"hub.yaml:5:", "tick"}},
      {"zero tick", m + "tick: 0s\n", {"hub.yaml:5:", "longer than 0s"}},
      {"unknown webhook event", m + "webhooks: [{url: \"https://x/h\", events: [halt, explode]}]\n",
       {"hub.yaml:5:", "unknown event `explode`"}},
      {"webhook without url", m + "webhooks: [{events: [halt]}]\n", {"webhooks[0]", "no `url`"}},
      {"webhook url scheme", m + "webhooks: [{url: \"ftp://x\"}]\n", {"https://"}},
      {"webhooks not a list", m + "webhooks: {url: x}\n", {"must be a list"}},
      {"tokens section empty", "listen: 127.0.0.1:1\nsource: {url: file:///x, allowed_signers: a}\n"
                               "devices: {}\noperators: {tokens: o}\n",
       {"`devices` has no `tokens`"}},
      {"log level", m + "log_level: loud\n", {"unknown log_level `loud`"}},
      {"not YAML", "listen: [\n", {"hub.yaml:", "not valid YAML"}},
      {"empty", "", {"empty"}},
      {"list at the top", "- a\n- b\n", {"must be a mapping"}},
  };
  for (const auto& c : cases) {
    auto e = parse_error(c.yaml);
    EXPECT_EQ(e.code, Errc::invalid_argument) << c.name;
    EXPECT_TRUE(contains(e.message, "/etc/eddy/hub.yaml")) << c.name << ": " << e.message;
    for (const auto& part : c.message_has) EXPECT_TRUE(contains(e.message, part)) << c.name << ": " << e.message;
  }
}

TEST(HubConfigTest, LoopbackAddressesAreToldApart) {
  for (const char* listen : {"127.0.0.1:8080", "127.1.2.3:0", "[::1]:8443", "localhost:80"})
    EXPECT_TRUE(is_loopback_listen(listen)) << listen;
  for (const char* listen : {"0.0.0.0:8080", "10.0.0.1:80", "[::]:8443", "example.com:80", ":8080", "128.0.0.1:1"})
    EXPECT_FALSE(is_loopback_listen(listen)) << listen;
}

class CheckHubConfigTest : public ::testing::Test {
 protected:
  HubConfig config() {
    auto c = parse_hub_config(kMinimal, dir_ / "hub.yaml");
    EXPECT_TRUE(c);
    c->data_dir = dir_ / "data";
    return *c;
  }
  void write_good_files() {
    auto key = eddy::testing::make_ssh_key(dir_ / "keys", "fleet");
    write_file(dir_ / "allowed_signers", "fleet@example.com " + key.public_line + "\n");
    write_file(dir_ / "device-tokens", "# id token\npi-0001 0123456789abcdef0123\n\npi-0002 abcdef0123456789abcd\n");
    write_file(dir_ / "operator-tokens", "alice 0123456789abcdef-alice\n");
  }
  TempDir dir_;
};

TEST_F(CheckHubConfigTest, GoodFilesPassAndTheDataFolderIsMade) {
  write_good_files();
  auto st = check_hub_config(config());
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "data"));
}

TEST_F(CheckHubConfigTest, EveryProblemIsListed) {
  write_file(dir_ / "device-tokens", "pi-0001 short\npi-0002\n");
  write_file(dir_ / "operator-tokens", "alice 0123456789abcdef-alice\nbob 0123456789abcdef-alice\n");
  auto st = check_hub_config(config());
  ASSERT_FALSE(st);
  const auto& m = st.error().message;
  EXPECT_TRUE(contains(m, "3 problems")) << m;
  EXPECT_TRUE(contains(m, "source.allowed_signers")) << m;
  EXPECT_TRUE(contains(m, "device-tokens:1: the token of `pi-0001` is shorter than 16")) << m;
  EXPECT_TRUE(contains(m, "device-tokens:2: expected \"<name> <token>\"")) << m;
  EXPECT_TRUE(contains(m, "operator-tokens:2: the token of `bob` is also another name's token")) << m;
}

TEST(TokenFileTest, NamesAreFoundByTokenAndChangesTakeEffectAtOnce) {
  TempDir dir;
  const auto file = dir / "tokens";
  write_file(file, "pi-1 token-one-0123456789\npi-2 token-two-0123456789\n");
  auto tokens = TokenFile::load(file);
  ASSERT_TRUE(tokens) << tokens.error().message;
  EXPECT_EQ(tokens->name_of("token-one-0123456789"), "pi-1");
  EXPECT_EQ(tokens->name_of("token-two-0123456789"), "pi-2");
  EXPECT_EQ(tokens->name_of("token-three-0123456789"), std::nullopt);
  EXPECT_EQ(tokens->name_of(""), std::nullopt);

  // Revoked: the line is gone (same size, so only the content and times differ).
  write_file(file, "pi-2 token-two-0123456789\npi-3 token-thr-0123456789\n");
  EXPECT_EQ(tokens->name_of("token-one-0123456789"), std::nullopt);
  EXPECT_EQ(tokens->name_of("token-thr-0123456789"), "pi-3");

  // A file that turns malformed keeps only its good lines; a missing file holds no tokens.
  write_file(file, "pi-2 token-two-0123456789\nbroken\n");
  EXPECT_EQ(tokens->name_of("token-two-0123456789"), "pi-2");
  EXPECT_EQ(tokens->name_of("token-thr-0123456789"), std::nullopt);
  std::filesystem::remove(file);
  EXPECT_EQ(tokens->name_of("token-two-0123456789"), std::nullopt);
  EXPECT_EQ(tokens->size(), 0u);

  auto missing = TokenFile::load(dir / "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
}

}  // namespace
}  // namespace eddy::fleet
