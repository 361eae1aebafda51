#include "daemon/config.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <gtest/gtest.h>

#include "ota/hub_token.hpp"
#include "tests/support/support.hpp"

namespace {

using namespace std::chrono_literals;
using eddy::Errc;
using eddy::daemon::check_config;
using eddy::daemon::parse_config;
using eddy::daemon::parse_size;
using eddy::testing::TempDir;
using eddy::testing::write_file;

// DESIGN.md's "Device configuration", verbatim.
constexpr const char* contract_example = R"(device:
  id: pi-0042                      # default: /etc/machine-id
  labels: {site: berlin, hw: pi4}
source:
  url: https://git.example.com/fleet.git   # file://, git://, http(s)://, ssh://
  branch: main
  interval: 60s                    # poll period; jittered; backs off on errors
  allowed_signers: /etc/eddy/allowed_signers
hub:                               # optional: without it, steps are paced by time
  url: https://hub.example.com:8443
  token_file: /etc/eddy/token
  ca_file: /etc/eddy/hub-ca.pem
data_dir: /var/lib/eddy
socket: /run/eddy/eddyd.sock
apps:                              # targets of payload type app
  sensor-app:
    dir: /opt/sensor-app           # versions/<version>/ and current -> versions/<version>
    run: [bin/sensor-app, --port, "8080"]    # supervised by eddyd, cwd = current/
    # or restart: [systemctl, restart, sensor-app.service]
)";

// The smallest valid configuration, with `extra` appended.
std::string minimal(const std::string& extra = "") {
  return "device: {id: dev-1}\n"
         "source:\n"
         "  url: file:///srv/fleet.git\n"
         "  allowed_signers: /etc/eddy/allowed_signers\n" +
         extra;
}

// Parse and expect an invalid_argument error at `line` whose message contains `needle`.
void expect_error(const std::string& yaml, int line, const std::string& needle, Errc code = Errc::invalid_argument) {
  auto config = parse_config(yaml, "/etc/eddy/eddyd.yaml");
  ASSERT_FALSE(config) << yaml;
  EXPECT_EQ(config.error().code, code) << config.error().message;
  const auto& message = config.error().message;
  if (line > 0) {
    EXPECT_TRUE(message.starts_with("/etc/eddy/eddyd.yaml:" + std::to_string(line) + ":"))
        << "expected line " << line << " in: " << message;
  }
  EXPECT_NE(message.find(needle), std::string::npos) << "expected `" << needle << "` in: " << message;
}

TEST(Config, ContractExampleParses) {
  auto config = parse_config(contract_example, "/etc/eddy/eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->file, "/etc/eddy/eddyd.yaml");
  EXPECT_EQ(config->device_id, "pi-0042");
  EXPECT_EQ(config->labels, (std::map<std::string, std::string>{{"site", "berlin"}, {"hw", "pi4"}}));
  EXPECT_EQ(config->source_url, "https://git.example.com/fleet.git");
  EXPECT_EQ(config->source_branch, "main");
  EXPECT_EQ(config->source_interval, 60s);
  EXPECT_EQ(config->allowed_signers, "/etc/eddy/allowed_signers");
  EXPECT_EQ(config->hub_url, "https://hub.example.com:8443");
  EXPECT_EQ(config->hub_token_file, "/etc/eddy/token");
  EXPECT_EQ(config->hub_ca_file, "/etc/eddy/hub-ca.pem");
  EXPECT_EQ(config->data_dir, "/var/lib/eddy");
  EXPECT_EQ(config->socket, "/run/eddy/eddyd.sock");
  ASSERT_EQ(config->apps.size(), 1u);
  const auto& app = config->apps.at("sensor-app");
  EXPECT_EQ(app.name, "sensor-app");
  EXPECT_EQ(app.dir, "/opt/sensor-app");
  EXPECT_EQ(app.run, (std::vector<std::string>{"bin/sensor-app", "--port", "8080"}));
  EXPECT_TRUE(app.restart.empty());
  EXPECT_EQ(app.max_unpacked_bytes, 1ull << 30);
  EXPECT_EQ(app.keep_versions, 2);
}

TEST(Config, PackagedDefaultConfigurationParses) {
  TempDir dir;
  auto text = eddy::testing::read_file(eddy::testing::source_dir() / "packaging/eddyd.yaml");
  write_file(dir / "machine-id", "0123456789abcdef0123456789abcdef\n");
  // The packaged file relies on /etc/machine-id; point it at a test file.
  auto config = parse_config(text + "\n", dir / "eddyd.yaml");
  if (!config && config.error().message.find("machine-id") != std::string::npos) GTEST_SKIP() << "no /etc/machine-id";
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_FALSE(config->source_url.empty());
}

TEST(Config, Defaults) {
  TempDir dir;
  write_file(dir / "machine-id", "0123456789abcdef0123456789abcdef\n");
  auto config = parse_config(
      "device: {machine_id_file: machine-id}\n"
      "source: {url: ssh://git@git.example.com/fleet.git, allowed_signers: /etc/eddy/allowed_signers}\n",
      dir / "eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->device_id, "0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(config->labels.empty());
  EXPECT_EQ(config->source_branch, "main");
  EXPECT_EQ(config->source_interval, 60s);
  EXPECT_FALSE(config->hub_url);
  EXPECT_EQ(config->data_dir, "/var/lib/eddy");
  EXPECT_EQ(config->socket, "/run/eddy/eddyd.sock");
  EXPECT_EQ(config->log_level, "info");
  EXPECT_TRUE(config->apps.empty());
  EXPECT_EQ(config->socket_group, ::getgrnam("eddy") ? "eddy" : "");
}

TEST(Config, ExplicitValues) {
  auto config = parse_config(minimal("socket_group: \"\"\nlog_level: debug\n"
                                     "apps:\n"
                                     "  a:\n"
                                     "    dir: /opt/a\n"
                                     "    restart: [systemctl, restart, a.service]\n"
                                     "    max_unpacked: 512MiB\n"
                                     "    keep_versions: 3\n"
                                     "  b: {dir: /opt/b}\n"),
                             "/etc/eddy/eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->socket_group, "");
  EXPECT_EQ(config->log_level, "debug");
  const auto& a = config->apps.at("a");
  EXPECT_EQ(a.restart, (std::vector<std::string>{"systemctl", "restart", "a.service"}));
  EXPECT_TRUE(a.run.empty());
  EXPECT_EQ(a.max_unpacked_bytes, 512ull << 20);
  EXPECT_EQ(a.keep_versions, 3);
  EXPECT_TRUE(config->apps.at("b").run.empty());
  EXPECT_TRUE(config->apps.at("b").restart.empty());
}

TEST(Config, RelativePathsAreRelativeToTheConfigurationFolder) {
  auto config = parse_config("device: {id: d}\n"
                             "source: {url: file:///f, allowed_signers: keys/allowed_signers}\n"
                             "hub: {url: http://127.0.0.1:8080, token_file: token, ca_file: ../ca.pem}\n"
                             "data_dir: state\n"
                             "socket: run/eddyd.sock\n"
                             "apps: {a: {dir: ./apps/a, run: [bin/a]}}\n",
                             "/srv/eddy/conf/eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->allowed_signers, "/srv/eddy/conf/keys/allowed_signers");
  EXPECT_EQ(config->hub_token_file, "/srv/eddy/conf/token");
  EXPECT_EQ(config->hub_ca_file, "/srv/eddy/ca.pem");
  EXPECT_EQ(config->data_dir, "/srv/eddy/conf/state");
  EXPECT_EQ(config->socket, "/srv/eddy/conf/run/eddyd.sock");
  EXPECT_EQ(config->apps.at("a").dir, "/srv/eddy/conf/apps/a");
  // Commands are not paths of the configuration: they run in the app's current/ folder.
  EXPECT_EQ(config->apps.at("a").run, std::vector<std::string>{"bin/a"});
}

TEST(Config, UnknownKeysNameFileLineAndSuggest) {
  expect_error(minimal("  intervall: 5s\n"), 5, "unknown key `intervall` in `source` (did you mean `interval`?)");
  expect_error("devise: {id: x}\n" + minimal(), 1, "unknown key `devise` in the configuration (did you mean `device`?)");
  expect_error(minimal("apps:\n  a:\n    dir: /opt/a\n    rnu: [x]\n"), 8, "did you mean `run`?");
  expect_error(minimal("allowed_signers: /x\n"), 5, "it belongs under `source`");
  expect_error(minimal("colour: blue\n"), 5, "known keys: device, source");
}

TEST(Config, WrongTypes) {
  expect_error(minimal("apps:\n  a: {dir: /opt/a, run: bin/a}\n"), 6, "must be a list of words");
  expect_error(minimal("apps:\n  a: {dir: [x]}\n"), 6, "`apps.a.dir` must be a text value, got a list");
  expect_error(minimal("apps:\n  a: {dir: /a, keep_versions: two}\n"), 6, "must be a whole number");
  expect_error(minimal("apps:\n  a: {dir: /a, keep_versions: 1}\n"), 6, "between 2 and 100");
  expect_error(minimal("apps:\n  a: {dir: /a, max_unpacked: lots}\n"), 6, "invalid size `lots`");
  expect_error(minimal("device2: x\n"), 5, "unknown key");
  expect_error("device: {id: d, labels: [a, b]}\nsource: {url: file:///f, allowed_signers: /a}\n", 1,
               "device.labels must be a mapping");
  expect_error("device: {id: d}\nsource: {url: file:///f, allowed_signers: /a, interval: 60}\n", 2,
               "bad duration `60`");
  expect_error("device: {id: d}\nsource: [a]\n", 2, "`source` must be a mapping");
  expect_error("- a\n- b\n", 1, "the configuration must be a mapping");
  expect_error(minimal("log_level: verbose\n"), 5, "unknown log_level `verbose`");
  expect_error(minimal("log_level: debgu\n"), 5, "did you mean `debug`?");
}

TEST(Config, MissingRequiredFields) {
  expect_error("device: {id: d}\n", 1, "there is no `source` section");
  expect_error("device: {id: d}\nsource:\n  url: file:///f\n", 3, "`source` has no `allowed_signers`");
  expect_error("device: {id: d}\nsource:\n  allowed_signers: /a\n", 3, "`source` has no `url`");
  expect_error(minimal("hub: {token_file: /t}\n"), 5, "`hub` has no `url`");
  expect_error(minimal("apps:\n  a: {run: [x]}\n"), 6, "`apps.a` has no `dir`");
}

TEST(Config, BadValues) {
  expect_error(minimal("apps:\n  a: {dir: /a, run: [x], restart: [y]}\n"), 6, "sets both `run` and `restart`");
  expect_error(minimal("apps:\n  a: {dir: /a}\n  b: {dir: /a}\n"), 7, "same folder as apps.a.dir");
  expect_error(minimal("apps:\n  rootfs: {dir: /a}\n"), 6, "A/B root file system");
  expect_error(minimal("apps:\n  \"bad name\": {dir: /a}\n"), 6, "app name `bad name`");
  expect_error("device: {id: d}\nsource: {url: git@host:fleet.git, allowed_signers: /a}\n", 2,
               "must start with file://");
  expect_error("device: {id: \"has space\"}\nsource: {url: file:///f, allowed_signers: /a}\n", 1, "device.id");
  expect_error(minimal("hub: {url: ftp://x}\n"), 5, "hub.url `ftp://x`");
  expect_error("device: {id: d}\nsource: {url: file:///f, allowed_signers: /a, branch: \"a..b\"}\n", 2,
               "not a valid Git branch name");
  expect_error(minimal("data_dir: \"\"\n"), 5, "must not be empty");
}

TEST(Config, DuplicateKeysAndSyntaxErrors) {
  expect_error(minimal("data_dir: /a\ndata_dir: /b\n"), 6, "key `data_dir` appears twice");
  expect_error(minimal("apps: {a: {dir: /a\n"), 0, "not valid YAML");
  expect_error("", 0, "the configuration is empty");
  auto config = parse_config("device: {id: d}\nsource: {url: [\n", "/etc/eddy/eddyd.yaml");
  ASSERT_FALSE(config);
  EXPECT_TRUE(config.error().message.starts_with("/etc/eddy/eddyd.yaml:")) << config.error().message;
}

TEST(Config, MissingMachineIdAsksForDeviceId) {
  TempDir dir;
  auto config = parse_config("device: {machine_id_file: " + (dir / "no-such-file").string() +
                                 "}\nsource: {url: file:///f, allowed_signers: /a}\n",
                             dir / "eddyd.yaml");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code, Errc::not_found);
  EXPECT_NE(config.error().message.find("set device.id"), std::string::npos) << config.error().message;
  EXPECT_NE(config.error().message.find("no-such-file"), std::string::npos) << config.error().message;
}

TEST(Config, LoadConfigNamesAMissingFile) {
  TempDir dir;
  auto config = eddy::daemon::load_config(dir / "absent.yaml");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code, Errc::not_found);
  EXPECT_NE(config.error().message.find("absent.yaml"), std::string::npos);

  write_file(dir / "eddyd.yaml", minimal("  bogus: 1\n"));
  config = eddy::daemon::load_config(dir / "eddyd.yaml");
  ASSERT_FALSE(config);
  EXPECT_TRUE(config.error().message.starts_with((dir / "eddyd.yaml").string() + ":5:")) << config.error().message;
}

TEST(Config, ParseSize) {
  EXPECT_EQ(parse_size("1048576"), 1048576u);
  EXPECT_EQ(parse_size("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_size("1GiB"), 1ull << 30);
  EXPECT_EQ(parse_size("2GB"), 2'000'000'000u);
  EXPECT_EQ(parse_size("64k"), 64'000u);
  EXPECT_EQ(parse_size("10 MB"), 10'000'000u);
  for (const char* bad : {"", "MiB", "1.5GiB", "12parsecs", "-1", "99999999999TiB"}) {
    auto size = parse_size(bad);
    ASSERT_FALSE(size) << bad;
    EXPECT_EQ(size.error().code, Errc::invalid_argument);
  }
}

TEST(Config, CheckConfigFindsMissingFilesAndCreatesDataDir) {
  TempDir dir;
  auto config = parse_config("device: {id: d}\n"
                             "source: {url: file:///f, allowed_signers: allowed_signers}\n"
                             "data_dir: state/deep\n"
                             "socket: run/eddyd.sock\n"
                             "socket_group: \"\"\n"
                             "apps: {a: {dir: apps/a}}\n",
                             dir / "eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  auto status = check_config(*config);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, Errc::not_found);
  EXPECT_NE(status.error().message.find("allowed_signers"), std::string::npos) << status.error().message;

  write_file(dir / "allowed_signers", "");
  status = check_config(*config);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("is empty"), std::string::npos) << status.error().message;

  write_file(dir / "allowed_signers", "fleet@example.com ssh-ed25519 AAAA\n");
  status = check_config(*config);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_TRUE(std::filesystem::is_directory(dir / "state/deep"));
}

TEST(Config, CheckConfigReportsEveryProblem) {
  TempDir dir;
  write_file(dir / "blocker", "a file where folders should be");
  auto config = parse_config("device: {id: d}\n"
                             "source: {url: file:///f, allowed_signers: nothing-here}\n"
                             "data_dir: blocker/state\n"
                             "socket_group: no-such-group-eddy-test\n"
                             "apps: {a: {dir: blocker/a}}\n",
                             dir / "eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  auto status = check_config(*config);
  ASSERT_FALSE(status);
  const auto& message = status.error().message;
  EXPECT_NE(message.find("4 problems"), std::string::npos) << message;
  EXPECT_NE(message.find("nothing-here"), std::string::npos) << message;
  EXPECT_NE(message.find("data_dir"), std::string::npos) << message;
  EXPECT_NE(message.find("no-such-group-eddy-test"), std::string::npos) << message;
  EXPECT_NE(message.find("apps.a.dir"), std::string::npos) << message;
}

}  // namespace

namespace {

TEST(Config, HubSection) {
  auto config = parse_config(minimal("hub:\n  url: https://hub.example.com:8443/eddy\n  token_file: /etc/eddy/token\n"
                                     "  outbox_limit: 500\n"),
                             "/etc/eddy/eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->hub_url, "https://hub.example.com:8443/eddy");
  EXPECT_EQ(config->hub_outbox_limit, 500);
  EXPECT_TRUE(config->hub_ca_file.empty());  // the system's CAs
  EXPECT_EQ(parse_config(minimal(), "/etc/eddy/eddyd.yaml")->hub_outbox_limit, 10000);

  // Plain http only to this machine: the token must not cross a network in clear text.
  for (const char* loopback : {"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8443", "http://127.3.0.9"}) {
    auto ok = parse_config(minimal(std::string("hub: {url: \"") + loopback + "\", token_file: /t}\n"), "/e.yaml");
    EXPECT_TRUE(ok) << loopback << ": " << ok.error().message;
  }
  expect_error(minimal("hub: {url: \"http://10.0.0.5:8080\", token_file: /t}\n"), 5, "clear text");
  expect_error(minimal("hub: {url: \"http://hub.example.com\", token_file: /t}\n"), 5, "use https://");
  expect_error(minimal("hub: {url: \"https://\", token_file: /t}\n"), 5, "hub.url: invalid URL");
  expect_error(minimal("hub: {url: \"https://user:pw@hub\", token_file: /t}\n"), 5, "credentials");
  expect_error(minimal("hub: {url: https://hub.example.com}\n"), 5, "`hub` has no `token_file`");
  expect_error(minimal("hub: {url: https://h, token_file: /t, outbox_limit: 5}\n"), 5, "between 100 and");
  expect_error(minimal("hub: {url: https://h, token_file: /t, outbox_limt: 5}\n"), 5, "did you mean `outbox_limit`?");
}

TEST(Config, CheckConfigReadsTheHubTokenAndCa) {
  TempDir dir;
  write_file(dir / "allowed_signers", "fleet@example.com ssh-ed25519 AAAA\n");
  auto config = parse_config("device: {id: d}\n"
                             "source: {url: file:///f, allowed_signers: allowed_signers}\n"
                             "hub: {url: https://hub.example.com, token_file: token, ca_file: ca.pem}\n"
                             "data_dir: state\n"
                             "socket: run/eddyd.sock\n"
                             "socket_group: \"\"\n",
                             dir / "eddyd.yaml");
  ASSERT_TRUE(config) << config.error().message;
  auto expect_problem = [&](Errc code, const std::string& needle) {
    auto status = check_config(*config);
    ASSERT_FALSE(status) << "expected: " << needle;
    EXPECT_EQ(status.error().code, code) << status.error().message;
    EXPECT_NE(status.error().message.find(needle), std::string::npos) << status.error().message;
  };
  write_file(dir / "ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  expect_problem(Errc::not_found, "hub.token_file");
  write_file(dir / "token", " \n\n");
  expect_problem(Errc::invalid_argument, "hub.token_file: token file " + (dir / "token").string() + " is empty");
  write_file(dir / "token", "abc def\n");
  expect_problem(Errc::invalid_argument, "more than one word");
  write_file(dir / "token", "  s3cr3t-token\n");
  EXPECT_TRUE(check_config(*config));
  EXPECT_EQ(eddy::ota::read_token(dir / "token").value_or(""), "s3cr3t-token");
  write_file(dir / "ca.pem", "not a certificate\n");
  expect_problem(Errc::invalid_argument, "hub.ca_file " + (dir / "ca.pem").string() + " holds no PEM certificate");
  std::filesystem::remove(dir / "ca.pem");
  expect_problem(Errc::not_found, "hub.ca_file");
}

}  // namespace

namespace {

// containers: (issue 5): absent means no container releases; present, even empty, enables them.
TEST(Config, ContainersSection) {
  auto none = parse_config(minimal(), "/etc/eddy/eddyd.yaml");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->containers);

  auto empty = parse_config(minimal("containers:\n"), "/etc/eddy/eddyd.yaml");
  ASSERT_TRUE(empty) << empty.error().message;
  ASSERT_TRUE(empty->containers);
  EXPECT_FALSE(empty->containers->runtime);
  EXPECT_EQ(empty->containers->keep, 2);

  auto set = parse_config(minimal("containers: {runtime: docker, keep: 3}\n"), "/etc/eddy/eddyd.yaml");
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->containers->runtime, eddy::RuntimeKind::docker);
  EXPECT_EQ(set->containers->keep, 3);

  expect_error(minimal("containers: {runtime: lxc}\n"), 5, "unknown container runtime `lxc`");
  expect_error(minimal("containers: {keep: 0}\n"), 5, "containers.keep");
  expect_error(minimal("containers: {runtme: podman}\n"), 5, "runtime");
}

}  // namespace
