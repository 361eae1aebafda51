// platform/container_runtime: the Podman and Docker adapters' command lines, checked against a
// recording runner, and the Podman adapter against the real Podman.
#include "platform/container_runtime.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "platform/http_client.hpp"
#include "tests/support/containers.hpp"
#include "tests/support/support.hpp"

namespace eddy {
namespace {

using Argv = std::vector<std::string>;
using namespace std::chrono_literals;

constexpr std::string_view kRef =
    "localhost/web@sha256:cba8fe05e3ffdd57f996a3cdf8a2c631e30bb83c2f6f17d639d03a9a8725b3c3";

// What stop and remove ask first: the addresses whose connection tracking goes with the container.
const std::string kAddresses = "{{range .NetworkSettings.Networks}}{{.IPAddress}}\n{{end}}";

ContainerSpec full_spec() {
  ContainerSpec spec;
  spec.name = "eddy-web-1.2.0";
  spec.image = std::string(kRef);
  spec.command = {"httpd", "-f"};
  spec.ports = {PortMapping{"127.0.0.1", 8080, 80, "tcp"}, PortMapping{"", 5353, 53, "udp"}};
  spec.env = {{"MODE", "a b"}};
  spec.volumes = {"web-data:/var/lib/web"};
  spec.restart = "on-failure";
  spec.memory_bytes = 64u << 20;
  spec.network = "host";
  spec.labels = {{"eddy.target", "web"}};
  return spec;
}

// The same command lines for both tools, except where they differ (image presence).
TEST(ContainerRuntime, AdaptersBuildTheToolsCommandLines) {
  for (auto kind : {RuntimeKind::podman, RuntimeKind::docker}) {
    RecordingRunner rec;
    auto rt = make_container_runtime(kind, rec.runner());
    const std::string tool(runtime_kind_name(kind));
    EXPECT_EQ(rt->name(), tool);
    ASSERT_TRUE(rt->load("/var/lib/eddy/web.tar"));
    ASSERT_TRUE(rt->pull(std::string(kRef)));
    ASSERT_TRUE(rt->image_exists(std::string(kRef)));
    ASSERT_TRUE(rt->run(full_spec()));
    ASSERT_TRUE(rt->stop("eddy-web-1.2.0", 10s));
    ASSERT_TRUE(rt->remove("eddy-web-1.2.0"));
    rec.reply(0, "true 5086a1cc\n");
    ASSERT_TRUE(rt->inspect("eddy-web-1.2.0"));
    ASSERT_TRUE(rt->containers_labelled("eddy.target", "web"));
    ASSERT_TRUE(rt->images());
    ASSERT_TRUE(rt->remove_image("5086a1cc"));
    const std::vector<Argv> expected = {
        {tool, "load", "-i", "/var/lib/eddy/web.tar"},
        {tool, "pull", std::string(kRef)},
        kind == RuntimeKind::podman ? Argv{tool, "image", "exists", std::string(kRef)}
                                    : Argv{tool, "image", "inspect", "--format", "{{.Id}}", std::string(kRef)},
        {tool, "run", "--detach", "--name", "eddy-web-1.2.0", "--pull=never", "--label", "eddy.target=web", "--publish",
         "127.0.0.1:8080:80/tcp", "--publish", "5353:53/udp", "--env", "MODE=a b", "--volume", "web-data:/var/lib/web",
         "--restart=on-failure", "--memory=67108864b", "--network=host", std::string(kRef), "httpd", "-f"},
        {tool, "container", "inspect", "--format", kAddresses, "eddy-web-1.2.0"},
        {tool, "stop", "--time", "10", "eddy-web-1.2.0"},
        {tool, "container", "inspect", "--format", kAddresses, "eddy-web-1.2.0"},
        {tool, "rm", "--force", "eddy-web-1.2.0"},
        {tool, "container", "inspect", "--format", "{{.State.Running}} {{.Image}}", "eddy-web-1.2.0"},
        {tool, "ps", "--all", "--filter", "label=eddy.target=web", "--format", "{{.Names}}"},
        {tool, "images", "--digests", "--no-trunc", "--format", "{{.ID}} {{.Repository}} {{.Digest}}"},
        {tool, "rmi", "5086a1cc"},
    };
    EXPECT_EQ(rec.calls(), expected) << tool;
  }
}

TEST(ContainerRuntime, AnswersAreReadAndFailuresNameTheCommand) {
  RecordingRunner rec;
  auto rt = make_container_runtime(RuntimeKind::docker, rec.runner(), "/usr/local/bin/docker");
  rec.reply(1, "Error: No such image: " + std::string(kRef) + "\n");
  auto exists = rt->image_exists(std::string(kRef));
  ASSERT_TRUE(exists);
  EXPECT_FALSE(*exists);

  rec.reply(1, "Error: No such container: eddy-web-1\n");
  auto missing = rt->inspect("eddy-web-1");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->exists);

  rec.reply(0, "WARN[0000] something\nfalse sha256:5086a1cc\n");
  auto stopped = rt->inspect("eddy-web-1");
  ASSERT_TRUE(stopped);
  EXPECT_TRUE(stopped->exists);
  EXPECT_FALSE(stopped->running);
  EXPECT_EQ(stopped->image_id, "5086a1cc");

  rec.reply(0, "sha256:aaa localhost/web sha256:111\nsha256:aaa localhost/web2 sha256:222\nbbb <none> <none>\n");
  auto images = rt->images();
  ASSERT_TRUE(images);
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].id, "aaa");
  EXPECT_EQ((*images)[0].references, (std::vector<std::string>{"localhost/web@sha256:111", "localhost/web2@sha256:222"}));
  EXPECT_TRUE((*images)[1].references.empty());

  rec.reply(125, "Error: image used by 80bfa0d1: image is in use by a container\n");
  auto in_use = rt->remove_image("aaa");
  ASSERT_FALSE(in_use);
  EXPECT_EQ(in_use.error().code, Errc::conflict);

  rec.reply(125, "Error: port 8080 already in use\n");
  ContainerSpec spec;
  spec.name = "eddy-web-2";
  spec.image = std::string(kRef);
  auto run = rt->run(spec);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, Errc::process);
  EXPECT_NE(run.error().message.find("eddy-web-2"), std::string::npos) << run.error().message;
  EXPECT_NE(run.error().message.find("/usr/local/bin/docker run"), std::string::npos) << run.error().message;
  EXPECT_NE(run.error().message.find("already in use"), std::string::npos) << run.error().message;

  rec.reply(1, "Error response from daemon: manifest unknown\n");
  auto pull = rt->pull(std::string(kRef));
  ASSERT_FALSE(pull);
  EXPECT_EQ(pull.error().code, Errc::network);
}

// Only the tools' own words for an unknown name mean "missing"; any other failure is an error,
// even one that mentions a missing file (settle() would otherwise replace a serving container).
TEST(ContainerRuntime, OnlyTheToolsWordsMeanMissing) {
  for (auto kind : {RuntimeKind::podman, RuntimeKind::docker}) {
    RecordingRunner rec;
    auto rt = make_container_runtime(kind, rec.runner());
    const std::string tool(runtime_kind_name(kind));
    for (std::string words : {"Error: inspecting object: no such container eddy-web-1\n",
                              "Error: No such object: eddy-web-1\n", "Error: No such container: eddy-web-1\n"}) {
      rec.reply(125, words);
      auto missing = rt->inspect("eddy-web-1");
      ASSERT_TRUE(missing) << tool << ": " << words;
      EXPECT_FALSE(missing->exists) << tool << ": " << words;
    }
    for (std::string words : {"Error: runc: container state: open /run/runc/x/state.json: no such file or directory\n",
                              "Error: layer not found\n", "Error: the network namespace does not exist\n"}) {
      rec.reply(125, words);
      auto failed = rt->inspect("eddy-web-1");
      ASSERT_FALSE(failed) << tool << ": " << words;
      EXPECT_EQ(failed.error().code, Errc::process);
      EXPECT_NE(failed.error().message.find("eddy-web-1"), std::string::npos) << failed.error().message;
      rec.reply(0);  // its addresses: none
      rec.reply(125, words);
      EXPECT_FALSE(rt->stop("eddy-web-1", 1s)) << tool << ": " << words;
      rec.reply(0);
      rec.reply(125, words);
      EXPECT_FALSE(rt->remove("eddy-web-1")) << tool << ": " << words;
    }
    rec.reply(125, "Error: inspecting object: no such container eddy-web-1\n");
    rec.reply(125, "Error: no container with name or ID \"eddy-web-1\" found: no such container\n");
    EXPECT_TRUE(rt->stop("eddy-web-1", 1s)) << tool;
    rec.reply(1, "Error: 5086a1cc: image not known\n");
    EXPECT_TRUE(rt->remove_image("5086a1cc")) << tool;
  }
}

// A removed container's addresses lose their connection tracking: a client port used before must
// not be sent to an address that is gone (issue 5's intermittent hand-over failure).
TEST(ContainerRuntime, RemoveForgetsTheConnectionTracking) {
  RecordingRunner rec;
  auto rt = make_container_runtime(RuntimeKind::podman, rec.runner());
  rec.reply(0, "10.88.0.7\n");
  rec.reply(0, "eddy-web-1\n");
  rec.reply(0, "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.\n");
  ASSERT_TRUE(rt->remove("eddy-web-1"));
  const std::vector<Argv> expected = {
      {"podman", "container", "inspect", "--format", kAddresses, "eddy-web-1"},
      {"podman", "rm", "--force", "eddy-web-1"},
      {"conntrack", "--delete", "--reply-src", "10.88.0.7"},
  };
  EXPECT_EQ(rec.calls(), expected);

  // A failed removal leaves the tracking alone.
  rec.reply(0, "10.88.0.8\n");
  rec.reply(125, "Error: cannot remove container: device or resource busy\n");
  EXPECT_FALSE(rt->remove("eddy-web-2"));
  EXPECT_EQ(rec.calls().size(), 5u);
}

// A hand-over's port switch: the service ports' DNAT to the candidate's address ahead of the
// runtime's own rules, a masquerade for loopback clients, all marked eddy:<target>; the same
// iptables for Podman and Docker (both publish through the nat table).
TEST(ContainerRuntime, RedirectPortsCommandLines) {
  for (auto kind : {RuntimeKind::podman, RuntimeKind::docker}) {
    RecordingRunner rec;
    auto rt = make_container_runtime(kind, rec.runner());
    const std::string tool(runtime_kind_name(kind));
    rec.reply(0, "10.88.0.9\n");
    ASSERT_TRUE(rt->redirect_ports("web", "eddy-web-2-candidate",
                                   {PortMapping{"127.0.0.1", 8080, 80, "tcp"}, PortMapping{"", 5353, 53, "udp"}}));
    const Argv nat = {"iptables", "-w", "-t", "nat"};
    auto ipt = [&](Argv args) {
      Argv argv = nat;
      argv.insert(argv.end(), args.begin(), args.end());
      return argv;
    };
    const std::vector<Argv> expected = {
        {tool, "container", "inspect", "--format", kAddresses, "eddy-web-2-candidate"},
        ipt({"-I", "POSTROUTING", "1", "-s", "127.0.0.0/8", "-d", "10.88.0.9/32", "-p", "tcp", "-m", "tcp", "--dport",
             "80", "-m", "comment", "--comment", "eddy:web", "-j", "MASQUERADE"}),
        ipt({"-I", "POSTROUTING", "1", "-s", "127.0.0.0/8", "-d", "10.88.0.9/32", "-p", "udp", "-m", "udp", "--dport",
             "53", "-m", "comment", "--comment", "eddy:web", "-j", "MASQUERADE"}),
        ipt({"-I", "PREROUTING", "1", "-d", "127.0.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-m", "comment",
             "--comment", "eddy:web", "-j", "DNAT", "--to-destination", "10.88.0.9:80"}),
        ipt({"-I", "OUTPUT", "1", "-d", "127.0.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-m", "comment",
             "--comment", "eddy:web", "-j", "DNAT", "--to-destination", "10.88.0.9:80"}),
        ipt({"-I", "PREROUTING", "1", "-m", "addrtype", "--dst-type", "LOCAL", "-p", "udp", "-m", "udp", "--dport",
             "5353", "-m", "comment", "--comment", "eddy:web", "-j", "DNAT", "--to-destination", "10.88.0.9:53"}),
        ipt({"-I", "OUTPUT", "1", "-m", "addrtype", "--dst-type", "LOCAL", "-p", "udp", "-m", "udp", "--dport", "5353",
             "-m", "comment", "--comment", "eddy:web", "-j", "DNAT", "--to-destination", "10.88.0.9:53"}),
    };
    EXPECT_EQ(rec.calls(), expected) << tool;

    // Removal finds its rules by their comment in iptables' own listing; another target's stay.
    rec.reply(0,
              "-P PREROUTING ACCEPT\n"
              "-A PREROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m comment --comment \"eddy:web\" -j DNAT "
              "--to-destination 10.88.0.9:80\n"
              "-A PREROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -m comment --comment \"eddy:web2\" -j DNAT "
              "--to-destination 10.88.0.4:80\n"
              "-A PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT\n"
              "-A POSTROUTING -s 127.0.0.0/8 -d 10.88.0.9/32 -p tcp -m tcp --dport 80 -m comment --comment eddy:web "
              "-j MASQUERADE\n");
    ASSERT_TRUE(rt->remove_redirects("web"));
    const std::vector<Argv> removal(rec.calls().begin() + static_cast<std::ptrdiff_t>(expected.size()), rec.calls().end());
    const std::vector<Argv> expected_removal = {
        ipt({"-S"}),
        ipt({"-D", "PREROUTING", "-d", "127.0.0.1/32", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-m", "comment",
             "--comment", "eddy:web", "-j", "DNAT", "--to-destination", "10.88.0.9:80"}),
        ipt({"-D", "POSTROUTING", "-s", "127.0.0.0/8", "-d", "10.88.0.9/32", "-p", "tcp", "-m", "tcp", "--dport", "80",
             "-m", "comment", "--comment", "eddy:web", "-j", "MASQUERADE"}),
    };
    EXPECT_EQ(removal, expected_removal) << tool;
  }
}

// What cannot be redirected says why (the installer then swaps as before); a failed insertion
// takes back the rules inserted before it; without iptables nothing is left to remove.
TEST(ContainerRuntime, RedirectPortsFailuresAreClear) {
  RecordingRunner rec;
  auto rt = make_container_runtime(RuntimeKind::podman, rec.runner());
  rec.reply(0, "\n");  // --network host: no address of its own
  auto no_address = rt->redirect_ports("web", "eddy-web-2-candidate", {PortMapping{"127.0.0.1", 8080, 80, "tcp"}});
  ASSERT_FALSE(no_address);
  EXPECT_EQ(no_address.error().code, Errc::unsupported);
  EXPECT_NE(no_address.error().message.find("eddy-web-2-candidate"), std::string::npos) << no_address.error().message;

  rec.reply(0, "10.88.0.9\n");
  auto ipv6 = rt->redirect_ports("web", "eddy-web-2-candidate", {PortMapping{"::1", 8080, 80, "tcp"}});
  ASSERT_FALSE(ipv6);
  EXPECT_EQ(ipv6.error().code, Errc::unsupported);
  EXPECT_NE(ipv6.error().message.find("::1"), std::string::npos) << ipv6.error().message;
  EXPECT_EQ(rec.calls().size(), 2u);  // no iptables call

  rec.reply(0, "10.88.0.9\n");
  rec.reply(0);  // the masquerade
  rec.reply(4, "iptables v1.8.9 (nf_tables): RULE_INSERT failed (No such file or directory)\n");
  rec.reply(0, "-A POSTROUTING -s 127.0.0.0/8 -d 10.88.0.9/32 -p tcp -m tcp --dport 80 -m comment --comment "
               "\"eddy:web\" -j MASQUERADE\n");
  auto failed = rt->redirect_ports("web", "eddy-web-2-candidate", {PortMapping{"127.0.0.1", 8080, 80, "tcp"}});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Errc::process);
  EXPECT_NE(failed.error().message.find("iptables -w -t nat -I PREROUTING"), std::string::npos) << failed.error().message;
  EXPECT_NE(failed.error().message.find("RULE_INSERT failed"), std::string::npos) << failed.error().message;
  ASSERT_EQ(rec.calls().size(), 7u);
  EXPECT_EQ(rec.calls()[5], (Argv{"iptables", "-w", "-t", "nat", "-S"}));
  EXPECT_EQ(rec.calls()[6][4], "-D");

  // No iptables on this machine: nothing to redirect, and nothing that could be left to remove.
  CommandRunner without_iptables = [&](const Argv& argv) -> Expected<process::Result> {
    if (argv.front() == "iptables") return make_error(Errc::not_found, "cannot run iptables: No such file or directory");
    return process::Result{0, false, "10.88.0.9\n"};
  };
  auto bare = make_container_runtime(RuntimeKind::podman, without_iptables);
  auto missing = bare->redirect_ports("web", "eddy-web-2-candidate", {PortMapping{"127.0.0.1", 8080, 80, "tcp"}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::unsupported);
  EXPECT_NE(missing.error().message.find("iptables"), std::string::npos) << missing.error().message;
  EXPECT_TRUE(bare->remove_redirects("web"));

  // Not allowed to list the nat table (a rootless eddyd): not allowed to have inserted there
  // either, so nothing is left to remove and the recovery goes on.
  RecordingRunner rootless;
  auto user = make_container_runtime(RuntimeKind::podman, rootless.runner());
  rootless.reply(4, "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you "
                    "must be root)\n");
  EXPECT_TRUE(user->remove_redirects("web"));
  EXPECT_EQ(rootless.calls().size(), 1u);
}

// Draining waits while connection tracking shows an established connection to the container,
// then forgets its entries.
TEST(ContainerRuntime, DrainWaitsForEstablishedConnections) {
  RecordingRunner rec;
  auto rt = make_container_runtime(RuntimeKind::podman, rec.runner());
  rec.reply(0, "10.88.0.7\n");
  rec.reply(0, "tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40312 dport=8080 src=10.88.0.7 "
               "dst=10.88.0.1 sport=80 dport=40312 [ASSURED] mark=0 use=1\n"
               "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.\n");
  rec.reply(0, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n");
  rec.reply(0, "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n");
  rt->drain("eddy-web-1", 30s);
  const Argv dump = {"conntrack", "--dump", "--proto", "tcp", "--state", "ESTABLISHED", "--reply-src", "10.88.0.7"};
  const std::vector<Argv> expected = {
      {"podman", "container", "inspect", "--format", kAddresses, "eddy-web-1"},
      dump,
      dump,
      {"conntrack", "--delete", "--reply-src", "10.88.0.7"},
  };
  EXPECT_EQ(rec.calls(), expected);
}

// The bridges a container is on: its networks, then those of driver bridge and their interface.
TEST(ContainerRuntime, BridgesOfAContainer) {
  RecordingRunner rec;
  auto podman = make_container_runtime(RuntimeKind::podman, rec.runner());
  rec.reply(0, "podman\nlan\n");
  rec.reply(0, "bridge podman0\nmacvlan \n");
  EXPECT_EQ(podman->bridges_of("eddy-web-1").value(), std::vector<std::string>{"podman0"});
  const std::vector<Argv> expected = {
      {"podman", "container", "inspect", "--format",
       "{{range $name, $n := .NetworkSettings.Networks}}{{$name}}\n{{end}}", "eddy-web-1"},
      {"podman", "network", "inspect", "--format", "{{.Driver}} {{.NetworkInterface}}", "podman", "lan"},
  };
  EXPECT_EQ(rec.calls(), expected);

  rec.reply(0, "\n");  // --network none or host: no networks, no bridge
  EXPECT_TRUE(podman->bridges_of("eddy-web-2").value().empty());
  EXPECT_EQ(rec.calls().size(), 3u);

  rec.reply(125, "Error: inspecting object: no such container eddy-web-3\n");
  auto missing = podman->bridges_of("eddy-web-3");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("eddy-web-3"), std::string::npos) << missing.error().message;

  RecordingRunner docker_rec;
  auto docker = make_container_runtime(RuntimeKind::docker, docker_rec.runner());
  EXPECT_TRUE(docker->bridges_of("eddy-web-1").value().empty());  // Docker fixes docker0's address
  EXPECT_TRUE(docker_rec.calls().empty());
}

TEST(ContainerRuntime, PinBridgeAddressRefusesBadNames) {
  auto bad = pin_bridge_address("../etc");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("../etc"), std::string::npos);
  auto missing = pin_bridge_address("eddynosuchbr0");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find("eddynosuchbr0"), std::string::npos);
}

TEST(ContainerRuntime, KindsParseAndDiscover) {
  EXPECT_EQ(parse_runtime_kind("podman").value(), RuntimeKind::podman);
  EXPECT_EQ(parse_runtime_kind("docker").value(), RuntimeKind::docker);
  auto bad = parse_runtime_kind("lxc");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("`lxc`"), std::string::npos);
  EXPECT_EQ(discover_runtime(RuntimeKind::docker).value(), RuntimeKind::docker);
}

// The Podman adapter against the real Podman: an image loaded from an OCI archive, a container
// that serves HTTP on a loopback port, found by its label, stopped and removed, the image removed.
TEST(ContainerRuntime, PodmanRunsARealContainer) {
  if (auto why = testing::podman_unavailable(); !why.empty()) GTEST_SKIP() << "real Podman test skipped: " << why;
  testing::TempDir dir;
  const std::string target = "rt-" + std::to_string(::getpid());
  testing::remove_test_images(target);
  auto image = testing::make_test_image(dir.path(), target, "1", {{"index.html", "one\n"}});
  auto rt = make_container_runtime(RuntimeKind::podman, process_runner());
  struct Cleanup {
    std::string target;
    ~Cleanup() {
      testing::remove_test_containers(target);
      testing::remove_test_images(target);
    }
  } cleanup{target};

  ASSERT_FALSE(rt->image_exists(image.reference).value());
  ASSERT_TRUE(rt->load(image.archive.string()));
  ASSERT_TRUE(rt->image_exists(image.reference).value());

  const int port = testing::free_port();
  ContainerSpec spec;
  spec.name = target + "-1";
  spec.image = image.reference;
  spec.ports = {PortMapping{"127.0.0.1", static_cast<std::uint16_t>(port), 80, "tcp"}};
  spec.labels = {{"eddy.target", target}};
  spec.memory_bytes = 32u << 20;
  ASSERT_TRUE(rt->run(spec));
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  std::string body;
  ASSERT_TRUE(testing::wait_until([&] {
    auto r = http::request(url);
    if (r && r->status == 200) body = r->body;
    return !body.empty();
  }));
  EXPECT_EQ(body, "one\n");

  auto status = rt->inspect(spec.name);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_TRUE(status->exists);
  EXPECT_TRUE(status->running);
  EXPECT_EQ(rt->containers_labelled("eddy.target", target).value(), std::vector<std::string>{spec.name});

  auto images = rt->images();
  ASSERT_TRUE(images);
  auto ours = std::ranges::find_if(*images, [&](const ImageRecord& i) {
    return std::ranges::find(i.references, image.reference) != i.references.end();
  });
  ASSERT_NE(ours, images->end());
  EXPECT_EQ(ours->id, status->image_id);
  // In use: the runtime refuses, and the adapter says so with its own code.
  auto in_use = rt->remove_image(ours->id);
  ASSERT_FALSE(in_use);
  EXPECT_EQ(in_use.error().code, Errc::conflict) << in_use.error().message;

  // A second container on the same port fails with the tool's words.
  ContainerSpec twin = spec;
  twin.name = target + "-2";
  auto clash = rt->run(twin);
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, Errc::process);
  EXPECT_NE(clash.error().message.find(twin.name), std::string::npos) << clash.error().message;
  ASSERT_TRUE(rt->remove(twin.name));

  ASSERT_TRUE(rt->stop(spec.name, 5s));
  EXPECT_FALSE(rt->inspect(spec.name).value().running);
  ASSERT_TRUE(rt->remove(spec.name));
  EXPECT_FALSE(rt->inspect(spec.name).value().exists);
  ASSERT_TRUE(rt->remove(spec.name));  // removing twice is fine
  ASSERT_TRUE(rt->stop(spec.name, 5s));
  ASSERT_TRUE(rt->remove_image(ours->id));
  EXPECT_FALSE(rt->image_exists(image.reference).value());
}

// The redirect against the real Podman and iptables: a service port published by one container
// answers from another while the first is replaced, for loopback and the host's other addresses,
// and answers from the replacement once the redirect is removed (no rule left behind).
TEST(ContainerRuntime, PodmanPortRedirectBridgesAReplacement) {
  if (auto why = testing::podman_unavailable(); !why.empty()) GTEST_SKIP() << "real Podman test skipped: " << why;
  if (testing::run({"iptables", "-w", "-t", "nat", "-S"}).exit_code != 0)
    GTEST_SKIP() << "iptables cannot list the nat table here (scripts/install-deps installs iptables)";
  testing::TempDir dir;
  const std::string target = "rd-" + std::to_string(::getpid());
  testing::remove_test_images(target);
  auto rt = make_container_runtime(RuntimeKind::podman, process_runner());
  struct Cleanup {
    std::string target;
    ~Cleanup() {
      testing::remove_test_containers(target);  // the redirect too
      testing::remove_test_images(target);
    }
  } cleanup{target};
  const auto loopback = static_cast<std::uint16_t>(testing::free_port());
  const auto any = static_cast<std::uint16_t>(testing::free_port());
  auto start = [&](const std::string& tag, std::uint16_t on_loopback, std::uint16_t on_any) {
    auto image = testing::make_test_image(dir.path(), target, tag, {{"index.html", tag + "\n"}});
    EXPECT_TRUE(rt->load(image.archive.string()));
    ContainerSpec spec;
    spec.name = target + "-" + tag;
    spec.image = image.reference;
    spec.ports = {PortMapping{"127.0.0.1", on_loopback, 80, "tcp"}, PortMapping{"", on_any, 80, "tcp"}};
    spec.labels = {{"eddy.target", target}};
    auto st = rt->run(spec);
    EXPECT_TRUE(st) << (st ? "" : st.error().message);
    return spec;
  };
  auto body = [](const std::string& host, std::uint16_t port) {
    http::RequestOptions options;
    options.timeout = 2s;
    auto r = http::request("http://" + host + ":" + std::to_string(port) + "/", options);
    return r && r->status == 200 ? r->body : std::string();
  };
  // A host address other than loopback, when the machine has one.
  std::string other = testing::run({"sh", "-c", "ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | "
                                                "grep -v '^10\\.88\\.' | head -n1"})
                          .output;
  while (!other.empty() && other.back() == '\n') other.pop_back();

  auto old_one = start("old", loopback, any);
  auto bridge = start("bridge", static_cast<std::uint16_t>(testing::free_port()),
                      static_cast<std::uint16_t>(testing::free_port()));
  ASSERT_TRUE(testing::wait_until([&] { return body("127.0.0.1", loopback) == "old\n"; }));
  ASSERT_TRUE(testing::wait_until([&] { return body("127.0.0.1", bridge.ports[0].host_port) == "bridge\n"; }));

  ASSERT_TRUE(rt->redirect_ports(target, bridge.name, old_one.ports));
  EXPECT_EQ(body("127.0.0.1", loopback), "bridge\n");
  EXPECT_EQ(body("127.0.0.1", any), "bridge\n");
  if (!other.empty()) {
    EXPECT_EQ(body(other, any), "bridge\n") << other;
  }
  ASSERT_TRUE(rt->remove(old_one.name));
  EXPECT_EQ(body("127.0.0.1", loopback), "bridge\n");
  auto next = start("next", loopback, any);
  EXPECT_EQ(body("127.0.0.1", loopback), "bridge\n");  // ahead of the new container's own rules

  ASSERT_TRUE(rt->remove_redirects(target));
  EXPECT_EQ(testing::run({"sh", "-c", "iptables -w -t nat -S | grep -c 'eddy:" + target + "'"}).output, "0\n");
  rt->drain(bridge.name, 10s);
  ASSERT_TRUE(rt->remove(bridge.name));
  EXPECT_TRUE(testing::wait_until([&] { return body("127.0.0.1", loopback) == "next\n"; }));
  EXPECT_EQ(body("127.0.0.1", any), "next\n");
  if (!other.empty()) {
    EXPECT_EQ(body(other, any), "next\n") << other;
  }
  ASSERT_TRUE(rt->remove_redirects(target));  // none left: fine
}

}  // namespace
}  // namespace eddy
