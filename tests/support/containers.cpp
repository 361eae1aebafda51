#include "tests/support/containers.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "platform/container_runtime.hpp"
#include "platform/http_client.hpp"
#include "tests/support/support.hpp"

namespace eddy::testing {

void use_test_containers_conf() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char* set = std::getenv("CONTAINERS_CONF"); set && *set) return;
    // One file per test process, left in /tmp's test folder of this process's lifetime.
    static TempDir dir;
    auto conf = dir / "containers.conf";
    write_file(conf,
               "[containers]\n"
               "default_ulimits = [\"nofile=1024:20000\", \"nproc=4096:4096\"]\n"
               "[engine]\n"
               "runtime = \"runc\"\n");
    ::setenv("CONTAINERS_CONF", conf.c_str(), 1);
  });
}

namespace {
// Real-Podman tests run one at a time across test programs (ctest -j runs several): Podman's
// store does not survive one process importing an image while another removes images ("layer
// not known"). The lock is held until this test process exits; O_CLOEXEC keeps it from the
// eddyd processes the tests start.
void hold_podman_lock() {
  static const int fd = [] {
    const auto path = stdfs::temp_directory_path() / "eddy-tests-podman.lock";
    int f = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (f < 0) throw std::runtime_error("cannot open " + path.string());
    while (::flock(f, LOCK_EX) != 0) {
      if (errno != EINTR) throw std::runtime_error("cannot lock " + path.string());
    }
    return f;
  }();
  (void)fd;
}
}  // namespace

std::string podman_unavailable() {
  if (!emulator().empty()) return "runs under qemu-user (" + emulator().front() + "): Podman cannot run containers there";
  if (run({"sh", "-c", "command -v podman"}).exit_code != 0) return "podman is not installed (scripts/install-deps installs it)";
  if (!stdfs::exists("/bin/busybox")) return "busybox-static is not installed (scripts/install-deps installs it)";
  hold_podman_lock();
  use_test_containers_conf();
  auto info = run({"podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"});
  if (info.exit_code != 0) return "`podman info` fails here: " + info.output;
  // `podman info` can pass where no container starts (no cgroup access, no netavark or
  // iptables inside a CI container): start one, with a published port as the tests use, once
  // per test process.
  static const std::string started = [] {
    TempDir dir;
    stdfs::create_directories(dir / "root" / "bin");
    stdfs::copy_file("/bin/busybox", dir / "root" / "bin" / "busybox");
    run_ok({"tar", "-C", (dir / "root").string(), "-cf", (dir / "root.tar").string(), "."});
    // Per process: test programs run side by side, and one's rmi must not take another's image.
    const std::string image = "localhost/eddy-podman-probe:" + std::to_string(::getpid());
    if (auto r = run({"podman", "import", (dir / "root.tar").string(), image}); r.exit_code != 0)
      return "`podman import` fails here: " + r.output;
    auto r = run({"podman", "run", "--rm", "--publish", "127.0.0.1::80", image, "/bin/busybox", "true"});
    (void)run({"podman", "rmi", "--force", image});
    if (r.exit_code != 0) return "a container with a published port does not start here: " + r.output;
    return std::string();
  }();
  return started;
}

TestImage make_test_image(const stdfs::path& dir, const std::string& repo, const std::string& tag,
                          const std::map<std::string, std::string>& www, bool zstd) {
  hold_podman_lock();  // also when a test calls it before podman_unavailable()
  use_test_containers_conf();
  const auto root = dir / ("rootfs-" + repo + "-" + tag);
  stdfs::create_directories(root / "bin");
  stdfs::create_directories(root / "www");
  stdfs::copy_file("/bin/busybox", root / "bin" / "busybox", stdfs::copy_options::overwrite_existing);
  for (const char* applet : {"sh", "httpd", "sleep", "cat", "kill"}) {
    std::error_code ec;
    stdfs::create_symlink("busybox", root / "bin" / applet, ec);
  }
  for (const auto& [name, content] : www) write_file(root / "www" / name, content);
  const auto rootfs_tar = dir / ("rootfs-" + repo + "-" + tag + ".tar");
  run_ok({"tar", "-C", root.string(), "-cf", rootfs_tar.string(), "."});
  const std::string name = "localhost/" + repo + ":" + tag;
  // httpd in the background and a shell that exits on SIGTERM: PID 1 ignores signals it has
  // no handler for, and a container that ignores SIGTERM costs the stop timeout on every swap.
  run_ok({"podman", "import", "--change",
          R"(CMD ["/bin/sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"])", rootfs_tar.string(), name});
  TestImage image;
  image.archive = dir / (repo + "-" + tag + ".oci.tar");
  std::error_code ec;
  stdfs::remove(image.archive, ec);
  run_ok({"podman", "save", "--format", "oci-archive", "-o", image.archive.string(), name});
  auto index = nlohmann::json::parse(run_ok({"tar", "-xOf", image.archive.string(), "index.json"}));
  image.reference = "localhost/" + repo + "@" + index["manifests"][0]["digest"].get<std::string>();
  run_ok({"podman", "rmi", "--force", name});
  if (zstd) {
    run_ok({"zstd", "-q", "-f", "--rm", image.archive.string(), "-o", image.archive.string() + ".zst"});
    image.archive += ".zst";
  }
  image.sha256 = run_ok({"sha256sum", image.archive.string()}).substr(0, 64);
  image.size = stdfs::file_size(image.archive);
  return image;
}

void remove_test_containers(const std::string& target) {
  hold_podman_lock();
  // A hand-over's port redirect (eddy:<target>) that a failed or killed test left behind.
  if (auto st = make_container_runtime(RuntimeKind::podman, process_runner())->remove_redirects(target); !st)
    std::cerr << "cannot remove the port redirects of " << target << ": " << st.error().message << "\n";
  auto names = run({"podman", "ps", "--all", "--filter", "label=eddy.target=" + target, "--format", "{{.Names}}"});
  std::string line;
  for (char c : names.output + "\n") {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (!line.empty()) run({"podman", "rm", "--force", "--time", "0", line});
    line.clear();
  }
}

void remove_test_images(const std::string& repo) {
  hold_podman_lock();
  auto ids = run({"podman", "images", "--format", "{{.ID}}", "--filter", "reference=localhost/" + repo});
  std::string line;
  for (char c : ids.output + "\n") {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (!line.empty()) run({"podman", "rmi", "--force", line});
    line.clear();
  }
}

HttpPoller::HttpPoller(int port, std::chrono::milliseconds timeout) : port_(port), timeout_(timeout) {
  thread_ = std::thread([this] {
    const std::string url = "http://127.0.0.1:" + std::to_string(port_) + "/";
    auto last_answer = std::chrono::steady_clock::now();
    http::RequestOptions options;
    options.timeout = timeout_;
    while (!stop_) {
      auto r = http::request(url, options);
      auto now = std::chrono::steady_clock::now();
      ++stats_.requests;
      if (r && r->status == 200) {
        ++answered_;
        // From the previous answer to this one: a slow answer is a gap too, not only a failure.
        auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_answer);
        if (gap > stats_.longest_gap) stats_.longest_gap = gap;
        last_answer = now;
      } else {
        ++stats_.failures;
        if (stats_.first_failure.empty())
          stats_.first_failure = r ? "HTTP " + std::to_string(r->status) : r.error().message;
        // Wait a little so that a refused connection does not spin.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - last_answer);
      if (gap > stats_.longest_gap) stats_.longest_gap = gap;
    }
  });
}

HttpPoller::~HttpPoller() {
  if (thread_.joinable()) stop();
}

HttpPoller::Stats HttpPoller::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  return stats_;
}

}  // namespace eddy::testing
