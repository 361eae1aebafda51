// Helpers for the container tests: real Podman on this machine with the settings it needs
// (../shared/MACHINE.md), images built from a busybox-static tree, and an HTTP client that
// polls a service and counts failed requests and the longest time without an answer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

namespace eddy::testing {

// Why real Podman cannot run here (empty when it can): under qemu-user, no podman on PATH, no
// busybox-static, or `podman info` failing. Sets CONTAINERS_CONF first (see below). When Podman
// is there, waits for and holds (until the process exits) the lock that lets one real-Podman
// test program at a time use it.
std::string podman_unavailable();

// Points CONTAINERS_CONF (for this process and its children) at a containers.conf that makes
// Podman run on this machine: the runc runtime and ulimits within the hard limits. Kept when
// CONTAINERS_CONF is set already.
void use_test_containers_conf();

struct TestImage {
  std::filesystem::path archive;  // an OCI archive (.tar, or .tar.zst when compressed)
  std::string reference;          // localhost/<repo>@sha256:<manifest digest>
  std::string sha256;             // of the archive file
  std::uint64_t size = 0;
};

// An image whose command serves `www` (file name -> content) with busybox httpd on port 80 and
// exits on SIGTERM, saved as an OCI archive in `dir`; the image itself is removed from Podman's
// store again, so that loading the archive is what brings it back.
TestImage make_test_image(const std::filesystem::path& dir, const std::string& repo, const std::string& tag,
                          const std::map<std::string, std::string>& www, bool zstd = false);

// Remove every container labelled eddy.target=<target> (and its hand-over port redirect, the
// nat rules marked eddy:<target>) and every image of localhost/<repo>.
void remove_test_containers(const std::string& target);
void remove_test_images(const std::string& repo);

// GET http://127.0.0.1:<port>/ in a loop on its own thread until stop().
class HttpPoller {
 public:
  struct Stats {
    int requests = 0;
    int failures = 0;                        // no answer, or not 200
    std::chrono::milliseconds longest_gap{0};  // longest time between two answered requests
    std::string first_failure;                 // what the first failed request got
  };
  // `timeout`: how long one request may wait for its answer before it counts as failed.
  explicit HttpPoller(int port, std::chrono::milliseconds timeout = std::chrono::seconds(1));
  ~HttpPoller();
  Stats stop();
  int answered() const { return answered_.load(); }

 private:
  int port_;
  std::chrono::milliseconds timeout_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  Stats stats_;
  std::thread thread_;
};

}  // namespace eddy::testing
