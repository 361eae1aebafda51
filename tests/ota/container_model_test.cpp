// The container payload of a release (ota/model.hpp, ContainerSettings): every key parsed, the
// defaults, and each refusal naming the file and line.
#include <gtest/gtest.h>

#include <string>

#include "ota/model.hpp"

namespace eddy::ota {
namespace {

constexpr std::string_view kSha = "9f2c3a1b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
constexpr std::string_view kDigest = "sha256:cba8fe05e3ffdd57f996a3cdf8a2c631e30bb83c2f6f17d639d03a9a8725b3c3";

std::string release(const std::string& payload_lines) {
  return "apiVersion: eddy/v1\nkind: Release\nmetadata: {name: web-1.2.0}\nspec:\n  target: web\n  version: 1.2.0\n"
         "  payload:\n    type: container\n" +
         payload_lines;
}

std::string archive_lines() {
  return "    image: localhost/web@" + std::string(kDigest) + "\n    path: payloads/web-1.2.0.oci.tar.zst\n    sha256: " +
         std::string(kSha) + "\n    size: 1234\n";
}

TEST(ContainerModel, EveryKeyParses) {
  auto r = parse_release(release(archive_lines() +
                                 "    command: [httpd, -f, -p, \"80\"]\n"
                                 "    ports: [{host: 8080, container: 80, candidate: 18080, ip: 127.0.0.1}, "
                                 "{host: 5353, container: 53, protocol: udp, candidate: 15353}]\n"
                                 "    env: {LOG_LEVEL: debug, MODE: \"2\"}\n"
                                 "    volumes: [\"web-data:/var/lib/web\", \"/srv/conf:/etc/web:ro\"]\n"
                                 "    restart: on-failure\n"
                                 "    memory: 64MiB\n"
                                 "    strategy: hand-over\n"),
                         "releases/web-1.2.0.yaml");
  ASSERT_TRUE(r) << r.error().message;
  const auto& c = r->payload.container;
  EXPECT_EQ(c.image, "localhost/web@" + std::string(kDigest));
  EXPECT_EQ(c.source, ImageSource::archive);
  EXPECT_EQ(c.command, (std::vector<std::string>{"httpd", "-f", "-p", "80"}));
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].ip, "127.0.0.1");
  EXPECT_EQ(c.ports[0].host, 8080);
  EXPECT_EQ(c.ports[0].container, 80);
  EXPECT_EQ(c.ports[0].candidate, 18080);
  EXPECT_EQ(c.ports[1].protocol, "udp");
  EXPECT_EQ(c.ports[1].ip, "0.0.0.0");
  EXPECT_EQ(c.env.at("MODE"), "2");
  EXPECT_EQ(c.volumes.size(), 2u);
  EXPECT_EQ(c.restart, "on-failure");
  EXPECT_EQ(c.memory_bytes, 64u << 20);
  EXPECT_EQ(c.strategy, SwapStrategy::hand_over);
  EXPECT_EQ(r->payload.path, "payloads/web-1.2.0.oci.tar.zst");
  EXPECT_EQ(r->payload.size, 1234u);
}

TEST(ContainerModel, DefaultsAndRegistrySource) {
  auto r = parse_release(release("    image: registry.example.com/team/web@" + std::string(kDigest) +
                                  "\n    source: registry\n    strategy: stop-then-start\n"
                                  "    ports: [{host: 8080, container: 80}]\n"),
                         "releases/web.yaml");
  ASSERT_TRUE(r) << r.error().message;
  const auto& c = r->payload.container;
  EXPECT_EQ(c.source, ImageSource::registry);
  EXPECT_EQ(c.restart, "unless-stopped");
  EXPECT_EQ(c.memory_bytes, 0u);
  EXPECT_EQ(c.strategy, SwapStrategy::stop_then_start);
  EXPECT_TRUE(r->payload.path.empty());
  EXPECT_TRUE(r->payload.sha256.empty());
  EXPECT_EQ(strategy_name(c.strategy), "stop-then-start");
}

TEST(ContainerModel, RefusalsNameTheFileAndLine) {
  struct Case {
    std::string payload;
    std::string line;    // "file:line:" expected at the start
    std::string words;   // expected in the message
  };
  const std::string img = "    image: localhost/web@" + std::string(kDigest) + "\n";
  const std::string bytes = "    path: payloads/web.tar\n    sha256: " + std::string(kSha) + "\n    size: 10\n";
  const std::vector<Case> cases = {
      {"    image: localhost/web:1.2\n" + bytes, "f.yaml:9:", "by digest"},
      {"    image: localhost/web@sha256:abc\n" + bytes, "f.yaml:9:", "by digest"},
      {img, "f.yaml:7:", "source: registry"},
      {img + "    source: registry\n" + bytes, "f.yaml:10:", "no path, url"},
      {img + bytes + "    ports: [{host: 8080, container: 80}]\n", "f.yaml:13:", "candidate"},
      {img + bytes + "    ports: [{host: 8080, container: 80, candidate: 8080}]\n", "f.yaml:13:", "same as the host port"},
      {img + bytes + "    strategy: stop-then-start\n    ports: [{host: 8080, container: 80}, {host: 8080, container: 81}]\n",
       "f.yaml:14:", "used twice"},
      {img + bytes + "    ports: [{host: 70000, container: 80, candidate: 1}]\n", "f.yaml:13:", "out of range"},
      {img + bytes + "    strategy: blue-green\n", "f.yaml:13:", "hand-over, stop-then-start"},
      {img + bytes + "    restart: sometimes\n", "f.yaml:13:", "unknown restart policy"},
      {img + bytes + "    memory: lots\n", "f.yaml:13:", "invalid size"},
      {img + bytes + "    memory: 1MiB\n", "f.yaml:13:", "below 6MiB"},
      {img + bytes + "    volumes: [\"data\"]\n", "f.yaml:13:", "not a volume"},
      {img + bytes + "    env: {\"1X\": y}\n", "f.yaml:13:", "not a variable name"},
      {img + bytes + "    port: []\n", "f.yaml:13:", "did you mean `ports`"},
  };
  for (const auto& c : cases) {
    auto r = parse_release(release(c.payload), "f.yaml");
    ASSERT_FALSE(r) << c.payload;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_TRUE(r.error().message.starts_with(c.line)) << r.error().message;
    EXPECT_NE(r.error().message.find(c.words), std::string::npos) << r.error().message;
  }
}

TEST(ContainerModel, ContainerKeysBelongToContainerPayloads) {
  auto r = parse_release("apiVersion: eddy/v1\nkind: Release\nmetadata: {name: a-1}\nspec:\n  target: a\n  version: '1'\n"
                         "  payload:\n    type: app\n    path: p.tar.zst\n    sha256: " +
                             std::string(kSha) + "\n    size: 1\n    image: x@" + std::string(kDigest) + "\n",
                         "releases/a.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("`image` belongs to payloads of type container"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace eddy::ota
