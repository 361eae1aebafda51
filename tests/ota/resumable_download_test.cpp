#include "ota/resumable_download.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "ota/payload.hpp"
#include "platform/process.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

namespace stdfs = std::filesystem;
using eddy::testing::contains;
using eddy::testing::run_ok;
using eddy::testing::TempDir;
using namespace std::chrono_literals;

std::string some_bytes(std::size_t size, std::uint32_t seed) {
  std::string out;
  out.reserve(size);
  std::uint32_t x = seed;
  while (out.size() < size) {
    x = x * 1103515245u + 12345u;
    out += static_cast<char>(x >> 24);
  }
  return out;
}

// tests/support/range_server.py as a child process on an OS-chosen port (it prints the port).
class RangeServer {
 public:
  RangeServer(const stdfs::path& file, const stdfs::path& work, const std::vector<std::string>& options = {}) {
    log_ = work / "requests.log";
    std::vector<std::string> argv{"python3", (eddy::testing::source_dir() / "tests/support/range_server.py").string(),
                                  "--file",  file.string(),
                                  "--log",   log_.string()};
    argv.insert(argv.end(), options.begin(), options.end());
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    auto pid = process::spawn(argv, {}, {}, fds[1]);
    ::close(fds[1]);
    if (!pid) {
      ::close(fds[0]);
      throw std::runtime_error(pid.error().message);
    }
    pid_ = *pid;
    std::string line;
    pollfd p{fds[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 20000) > 0) {
      char buffer[64];
      auto n = ::read(fds[0], buffer, sizeof buffer);
      if (n <= 0) break;
      line.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    port_ = std::atoi(line.c_str());
    if (port_ <= 0) throw std::runtime_error("range_server.py did not start: " + line);
  }
  ~RangeServer() { process::terminate(pid_, 2s); }
  RangeServer(const RangeServer&) = delete;
  RangeServer& operator=(const RangeServer&) = delete;

  std::string url(const std::string& path = "/image.zst") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<nlohmann::json> requests() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(log_);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
  }

 private:
  stdfs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

ResumeOptions quick() {
  ResumeOptions options;
  options.idle_timeout = 2s;
  options.max_retries = 4;
  options.initial_backoff = 5ms;
  options.max_backoff = 20ms;
  return options;
}

Expected<std::string> drain(ByteStream& stream) {
  std::string out;
  std::string buffer(100000, '\0');  // not a divisor of the cut points
  for (;;) {
    auto n = stream.read(buffer.data(), buffer.size());
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return out;
    out.append(buffer.data(), *n);
  }
}

std::string sha256_of(const stdfs::path& path) { return run_ok({"sha256sum", path.string()}).substr(0, 64); }

struct Fixture : ::testing::Test {
  Fixture() {
    data = some_bytes(4'000'000, 7);
    eddy::testing::write_file(dir / "image.zst", data);
  }
  TempDir dir;
  std::string data;
};

using ResumableDownload = Fixture;

TEST_F(ResumableDownload, ResumesWithRangeOnAFreshConnectionAfterEachCut) {
  RangeServer server(dir / "image.zst", dir.path(),
                     {"--fault", "cut", "--fault-after", "1000000", "--fault-requests", "3"});
  ::testing::internal::CaptureStderr();
  auto inner = open_resumable_url_stream(server.url(), quick());
  ASSERT_TRUE(inner) << inner.error().message;
  // As the updater reads it: the size and digest of the release checked over the whole stream.
  VerifyingStream stream(std::move(*inner), sha256_of(dir / "image.zst"), data.size(), "rootfs 2.0");
  auto got = drain(stream);
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == data);

  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_TRUE(requests[0]["range"].is_null());
  EXPECT_EQ(requests[0]["status"], 200);
  std::set<int> client_ports;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    client_ports.insert(requests[i]["client_port"].get<int>());
    if (i == 0) continue;
    EXPECT_EQ(requests[i]["range"], "bytes=" + std::to_string(i * 1000000) + "-");
    EXPECT_EQ(requests[i]["status"], 206);
    EXPECT_TRUE(requests[i]["if_range"].is_string()) << "If-Range with the ETag";
  }
  EXPECT_EQ(client_ports.size(), 4u) << "each resume is a new connection from a new local address";
  EXPECT_TRUE(contains(log, "resuming " + server.url() + " at byte 1000000 (attempt 1")) << log;
  EXPECT_TRUE(contains(log, "resuming " + server.url() + " at byte 3000000 (attempt 1")) << log;
}

TEST_F(ResumableDownload, ResumesAfterAStall) {
  RangeServer server(dir / "image.zst", dir.path(),
                     {"--fault", "stall", "--fault-after", "500000", "--fault-requests", "1"});
  auto options = quick();
  options.idle_timeout = 300ms;
  auto stream = open_resumable_url_stream(server.url(), options);
  ASSERT_TRUE(stream) << stream.error().message;
  auto got = drain(**stream);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == data);
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1]["range"], "bytes=500000-");
}

TEST_F(ResumableDownload, AServerIgnoringRangeIsReadOnFromTheByteReached) {
  RangeServer server(dir / "image.zst", dir.path(),
                     {"--ignore-range", "--fault", "cut", "--fault-after", "1500000", "--fault-requests", "2"});
  auto stream = open_resumable_url_stream(server.url(), quick());
  ASSERT_TRUE(stream) << stream.error().message;
  auto got = drain(**stream);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->size(), data.size());
  EXPECT_TRUE(*got == data) << "no byte twice, none missing";
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1]["status"], 200);
  EXPECT_EQ(requests[2]["range"], "bytes=1500000-");
}

TEST_F(ResumableDownload, RefusesToJoinTwoVersionsOfAChangedFile) {
  eddy::testing::write_file(dir / "new.zst", some_bytes(4'000'000, 8));
  RangeServer server(dir / "image.zst", dir.path(),
                     {"--fault", "cut", "--fault-after", "1000000", "--fault-requests", "1", "--change-to",
                      (dir / "new.zst").string(), "--change-at", "2"});
  auto stream = open_resumable_url_stream(server.url(), quick());
  ASSERT_TRUE(stream) << stream.error().message;
  auto got = drain(**stream);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::conflict);
  EXPECT_TRUE(contains(got.error().message, "changed")) << got.error().message;
  EXPECT_TRUE(contains(got.error().message, server.url())) << got.error().message;
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1]["status"], 200) << "the If-Range validator no longer matched";
}

TEST_F(ResumableDownload, AChangedFileBeforeAnyByteStartsOver) {
  auto fresh = some_bytes(3'000'000, 9);
  eddy::testing::write_file(dir / "new.zst", fresh);
  RangeServer server(dir / "image.zst", dir.path(),
                     {"--fault", "cut", "--fault-after", "0", "--fault-requests", "1", "--change-to",
                      (dir / "new.zst").string(), "--change-at", "2"});
  auto stream = open_resumable_url_stream(server.url(), quick());
  ASSERT_TRUE(stream) << stream.error().message;
  auto got = drain(**stream);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == fresh) << "nothing was handed out yet: the new file from its start";
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_TRUE(requests[1]["range"].is_null());
}

TEST_F(ResumableDownload, GivesUpAfterTheRetriesWithoutProgress) {
  RangeServer server(dir / "image.zst", dir.path(),
                     {"--fault", "cut", "--fault-after", "0", "--fault-requests", "100"});
  auto options = quick();
  options.max_retries = 3;
  auto stream = open_resumable_url_stream(server.url(), options);
  ASSERT_TRUE(stream) << stream.error().message;
  auto got = drain(**stream);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::network);
  EXPECT_TRUE(contains(got.error().message, "giving up at byte 0 of 4000000 after 3 retries")) << got.error().message;
  EXPECT_TRUE(contains(got.error().message, server.url())) << got.error().message;
  EXPECT_EQ(server.requests().size(), 4u);
  // Errors are sticky.
  char byte;
  EXPECT_FALSE((*stream)->read(&byte, 1));
}

TEST_F(ResumableDownload, ANotFoundIsFinalAtOnce) {
  RangeServer server(dir / "image.zst", dir.path());
  auto stream = open_resumable_url_stream(server.url("/missing.zst"), quick());
  ASSERT_FALSE(stream);
  EXPECT_EQ(stream.error().code, Errc::network);
  EXPECT_TRUE(contains(stream.error().message, "HTTP 404")) << stream.error().message;
  EXPECT_TRUE(contains(stream.error().message, server.url("/missing.zst"))) << stream.error().message;
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(ResumableDownload, ARefusedConnectionIsRetriedThenReported) {
  auto options = quick();
  options.max_retries = 2;
  auto url = "http://127.0.0.1:" + std::to_string(eddy::testing::free_port()) + "/image.zst";
  auto stream = open_resumable_url_stream(url, options);
  ASSERT_FALSE(stream);
  EXPECT_EQ(stream.error().code, Errc::network);
  EXPECT_TRUE(contains(stream.error().message, "after 2 retries")) << stream.error().message;
  EXPECT_TRUE(contains(stream.error().message, url)) << stream.error().message;
}

}  // namespace
}  // namespace eddy::ota
