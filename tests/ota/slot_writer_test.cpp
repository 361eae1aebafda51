#include "ota/slot_writer.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <thread>

#include "ota/payload.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

namespace stdfs = std::filesystem;
using eddy::testing::contains;
using eddy::testing::run;
using eddy::testing::run_ok;
using eddy::testing::TempDir;
using namespace std::chrono_literals;

constexpr std::uint64_t MiB = 1u << 20;

// An image like a root filesystem: pseudo-random blocks (incompressible data) and zero blocks
// (free space), written in pieces so that tests of any size hold little in memory.
void make_image(const stdfs::path& path, std::uint64_t size, std::uint32_t seed = 1) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::string block(256 * 1024, '\0');
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::uint64_t at = 0, index = 0; at < size; at += block.size(), ++index) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), size - at));
    if (index % 3 == 2) {
      std::fill(block.begin(), block.end(), '\0');
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block[i] = static_cast<char>(x >> 56);
      }
    }
    out.write(block.data(), static_cast<std::streamsize>(n));
  }
}

// The zstd CLI, as releases are made. extra: more options ("--no-content-size", ...).
stdfs::path compress(const stdfs::path& image, std::vector<std::string> extra = {}, std::string level = "-3") {
  stdfs::path out = image.string() + ".zst";
  std::vector<std::string> argv{"zstd", "-q", "-f", level};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {image.string(), "-o", out.string()});
  run_ok(argv);
  return out;
}

std::string sha256_of(const stdfs::path& path) { return run_ok({"sha256sum", path.string()}).substr(0, 64); }

// A slot stand-in: a file of `size` bytes filled with 0xA5, so leftovers of earlier content show.
void make_slot(const stdfs::path& path, std::uint64_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::string block(MiB, '\xA5');
  for (std::uint64_t at = 0; at < size; at += block.size())
    out.write(block.data(), static_cast<std::streamsize>(std::min<std::uint64_t>(block.size(), size - at)));
}

// The first `size` bytes of `slot` equal `image`, as `cmp` sees it.
bool slot_starts_with(const stdfs::path& slot, const stdfs::path& image) {
  auto size = stdfs::file_size(image);
  return run({"cmp", "-n", std::to_string(size), slot.string(), image.string()}).exit_code == 0;
}

SlotWriteOptions named(std::string name) {
  SlotWriteOptions options;
  options.slot_name = std::move(name);
  return options;
}

// A compressed payload read from a file with a fixed buffer, as a download would deliver it.
class FileStream final : public ByteStream {
 public:
  explicit FileStream(const stdfs::path& path, std::chrono::microseconds delay = {})
      : in_(path, std::ios::binary), delay_(delay) {}
  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    in_.read(buffer, static_cast<std::streamsize>(std::min<std::size_t>(size, 64 * 1024)));
    return static_cast<std::size_t>(in_.gcount());
  }

 private:
  std::ifstream in_;
  std::chrono::microseconds delay_;
};

// The payload as the updater opens it: the compressed bytes checked against the release.
std::unique_ptr<VerifyingStream> verified(const stdfs::path& compressed, std::string sha256 = {}) {
  if (sha256.empty()) sha256 = sha256_of(compressed);
  return std::make_unique<VerifyingStream>(std::make_unique<FileStream>(compressed), sha256,
                                           stdfs::file_size(compressed), "rootfs 2.0");
}

TEST(SlotWriter, WritesTheImageSyncsAndReadsItBack) {
  TempDir dir;
  make_image(dir / "image", 24 * MiB + 12345);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", 40 * MiB);
  auto stream = verified(zst);
  SlotWriteOptions options;
  options.slot_name = "rootfs.b";
  options.expected_image_sha256 = sha256_of(dir / "image");
  auto result = write_slot_image(*stream, dir / "slot", options);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->image_sha256, sha256_of(dir / "image"));
  EXPECT_EQ(result->image_bytes, 24 * MiB + 12345);
  EXPECT_EQ(result->compressed_bytes, stdfs::file_size(zst));
  EXPECT_TRUE(slot_starts_with(dir / "slot", dir / "image"));
  EXPECT_EQ(stdfs::file_size(dir / "slot"), 40 * MiB) << "a file slot is never grown or truncated";
  // The rest of the slot is left as it was.
  auto rest = run_ok(
      {"sh", "-c",
       "tail -c " + std::to_string(16 * MiB - 12345) + " " + (dir / "slot").string() + " | tr -d '\\245' | wc -c"});
  EXPECT_EQ(std::stoi(rest), 0);
}

TEST(SlotWriter, AcceptsLevel19AndStreamsWithoutAContentSize) {
  TempDir dir;
  make_image(dir / "image", 8 * MiB + 1);
  auto zst = compress(dir / "image", {"--no-content-size"}, "-19");
  make_slot(dir / "slot", 9 * MiB);
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, dir / "slot");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->image_sha256, sha256_of(dir / "image"));
  EXPECT_TRUE(slot_starts_with(dir / "slot", dir / "image"));
}

TEST(SlotWriter, AnImageExactlyTheSlotsSizeFits) {
  TempDir dir;
  make_image(dir / "image", 8 * MiB);
  auto zst = compress(dir / "image", {"--no-content-size"});
  make_slot(dir / "slot", 8 * MiB);
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, dir / "slot");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_TRUE(slot_starts_with(dir / "slot", dir / "image"));
}

// The read-back's direct reads are whole blocks: a file slot that ends mid-block, right after
// the image, still verifies (the last read stops at the file's end).
TEST(SlotWriter, AnImageEndingMidBlockFillsAFileSlotExactly) {
  TempDir dir;
  make_image(dir / "image", 9 * MiB + 1000);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", 9 * MiB + 1000);
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, dir / "slot");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->image_bytes, 9 * MiB + 1000);
  EXPECT_EQ(result->image_sha256, sha256_of(dir / "image"));
  EXPECT_TRUE(slot_starts_with(dir / "slot", dir / "image"));
}

TEST(SlotWriter, ReportsProgressAtMostEveryPeriodInBothPhases) {
  TempDir dir;
  make_image(dir / "image", 16 * MiB);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", 16 * MiB);
  // A slow source (about 0.5 s in all) so that several periods pass.
  FileStream stream(zst, 2ms);
  std::vector<std::pair<std::chrono::steady_clock::time_point, SlotWriteProgress>> reports;
  SlotWriteOptions options;
  options.progress_every = 50ms;
  options.progress = [&](const SlotWriteProgress& p) { reports.emplace_back(std::chrono::steady_clock::now(), p); };
  auto result = write_slot_image(stream, dir / "slot", options);
  ASSERT_TRUE(result) << result.error().message;

  using Phase = SlotWriteProgress::Phase;
  std::vector<SlotWriteProgress> writing, verifying;
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const auto& [when, p] = reports[i];
    (p.phase == Phase::writing ? writing : verifying).push_back(p);
    // Between two periodic reports of a phase, a full period; the last report of each phase
    // (at its end) may come sooner.
    auto last_of_phase = [&](std::size_t k) {
      return k + 1 == reports.size() || reports[k + 1].second.phase != reports[k].second.phase;
    };
    if (!last_of_phase(i) && !last_of_phase(i + 1)) {
      EXPECT_GE(reports[i + 1].first - when, 50ms) << "report " << i;
    }
  }
  ASSERT_GE(writing.size(), 3u) << "several reports while writing for about half a second";
  ASSERT_GE(verifying.size(), 1u);
  for (std::size_t i = 1; i < writing.size(); ++i) {
    EXPECT_GE(writing[i].bytes_out, writing[i - 1].bytes_out);
    EXPECT_GE(writing[i].bytes_in, writing[i - 1].bytes_in);
  }
  EXPECT_EQ(writing.back().bytes_out, 16 * MiB);
  EXPECT_EQ(writing.back().bytes_in, stdfs::file_size(zst));
  EXPECT_EQ(writing.back().image_size, std::optional<std::uint64_t>(16 * MiB));
  EXPECT_GT(writing.back().bytes_per_second, 0);
  EXPECT_GE(writing.back().elapsed, 300ms);
  EXPECT_EQ(verifying.back().bytes_out, 16 * MiB);
}

TEST(SlotWriter, RefusesAnImageLargerThanTheSlotBeforeWritingWhenTheHeaderSaysSo) {
  TempDir dir;
  make_image(dir / "image", 12 * MiB);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", 8 * MiB);
  make_slot(dir / "untouched", 8 * MiB);
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, dir / "slot", named("rootfs.b"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::too_large);
  EXPECT_TRUE(contains(result.error().message, "rootfs.b")) << result.error().message;
  EXPECT_TRUE(contains(result.error().message, std::to_string(12 * MiB))) << result.error().message;
  EXPECT_EQ(stdfs::file_size(dir / "slot"), 8 * MiB);
  EXPECT_EQ(run({"cmp", (dir / "slot").string(), (dir / "untouched").string()}).exit_code, 0)
      << "nothing may be written when the header gives the size away";
}

TEST(SlotWriter, RefusesAnImageLargerThanTheSlotWithoutWritingPastItsEnd) {
  TempDir dir;
  make_image(dir / "image", 12 * MiB);
  auto zst = compress(dir / "image", {"--no-content-size"});
  const std::uint64_t slot_bytes = 6 * MiB + 100;
  make_slot(dir / "slot", slot_bytes);
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, dir / "slot", named("rootfs.b"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::too_large);
  EXPECT_TRUE(contains(result.error().message, "rootfs.b")) << result.error().message;
  EXPECT_EQ(stdfs::file_size(dir / "slot"), slot_bytes) << "not a byte past the slot's end";
}

TEST(SlotWriter, RefusesATruncatedStream) {
  TempDir dir;
  make_image(dir / "image", 6 * MiB);
  auto zst = compress(dir / "image");
  auto data = eddy::testing::read_file(zst);
  make_slot(dir / "slot", 8 * MiB);
  MemoryStream stream(data.substr(0, data.size() / 2));
  auto result = write_slot_image(stream, dir / "slot", named("rootfs.b"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(result.error().message, "truncated")) << result.error().message;
  EXPECT_TRUE(contains(result.error().message, "rootfs.b")) << result.error().message;
}

TEST(SlotWriter, RefusesACorruptStream) {
  TempDir dir;
  make_image(dir / "image", 6 * MiB);
  auto zst = compress(dir / "image");
  auto data = eddy::testing::read_file(zst);
  for (std::size_t i = data.size() / 2; i < data.size() / 2 + 64; ++i) data[i] = static_cast<char>(data[i] ^ 0x5a);
  make_slot(dir / "slot", 8 * MiB);
  MemoryStream stream(data);
  auto result = write_slot_image(stream, dir / "slot", named("rootfs.b"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(result.error().message, "corrupt")) << result.error().message;
}

TEST(SlotWriter, RefusesBytesThatAreNotZstdAndAnEmptyStream) {
  TempDir dir;
  make_slot(dir / "slot", MiB);
  MemoryStream not_zstd(std::string(100000, 'x'));
  auto result = write_slot_image(not_zstd, dir / "slot");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);

  MemoryStream empty("");
  result = write_slot_image(empty, dir / "slot");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(result.error().message, "empty")) << result.error().message;
}

TEST(SlotWriter, RefusesAWindowTooLargeForBoundedMemory) {
  TempDir dir;
  make_image(dir / "image", MiB);
  // From stdin the size is unknown, so --long=27 keeps its 128 MiB window.
  run_ok({"sh", "-c", "zstd -q --long=27 -c < " + (dir / "image").string() + " > " + (dir / "image.zst").string()});
  make_slot(dir / "slot", 2 * MiB);
  FileStream stream(dir / "image.zst");
  auto result = write_slot_image(stream, dir / "slot");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(result.error().message, "window")) << result.error().message;
}

TEST(SlotWriter, PassesOnTheCompressedDigestMismatch) {
  TempDir dir;
  make_image(dir / "image", 3 * MiB);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", 4 * MiB);
  auto stream = verified(zst, std::string(64, '0'));
  auto result = write_slot_image(*stream, dir / "slot");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::digest_mismatch);
  EXPECT_TRUE(contains(result.error().message, "rootfs 2.0")) << result.error().message;
}

TEST(SlotWriter, RefusesAnImageWithAnotherDigestThanTheRelease) {
  TempDir dir;
  make_image(dir / "image", 3 * MiB);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", 4 * MiB);
  auto stream = verified(zst);
  SlotWriteOptions options;
  options.expected_image_sha256 = std::string(64, 'a');
  auto result = write_slot_image(*stream, dir / "slot", options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::digest_mismatch);
  EXPECT_TRUE(contains(result.error().message, sha256_of(dir / "image"))) << result.error().message;
}

// Flips the bits of `mask` in the byte at `at` of `path`, on disk (fsynced).
void flip_byte(const stdfs::path& path, std::uint64_t at, char mask) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  char byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, static_cast<off_t>(at)), 1);
  byte = static_cast<char>(byte ^ mask);
  ASSERT_EQ(::pwrite(fd, &byte, 1, static_cast<off_t>(at)), 1);
  ::fsync(fd);
  ::close(fd);
}

std::string read_range(const stdfs::path& path, std::uint64_t offset, std::size_t size) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string data(size, '\0');
  in.read(data.data(), static_cast<std::streamsize>(size));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return data;
}

// A hook for SlotWriteOptions::before_read_back: flips `mask` in the byte at `at` of `path` (the
// slot, or the file behind it) once the chunk holding that byte has been written and synced, right
// before it is read back; counts the chunks it saw and the bytes it planted.
struct PlantByte {
  stdfs::path path;
  std::uint64_t at = 0;
  char mask = 0x01;
  std::uint64_t chunks = 0;
  std::uint64_t planted = 0;
  void operator()(std::uint64_t offset, std::size_t size) {
    ++chunks;
    if (at >= offset && at < offset + size) {
      flip_byte(path, at, mask);
      ++planted;
    }
  }
};

// The read-back runs beside the writing, a chunk at a time once it is on the device: a byte
// changed on the device after its chunk was written and synced is found, and named exactly,
// in a chunk read back while later chunks are still being written (5 MiB of 10) and in the last
// one, read back after the final fdatasync.
TEST(SlotWriter, ReadBackFindsABytePlantedBetweenWriteAndVerify) {
  TempDir dir;
  make_image(dir / "image", 10 * MiB + 4567);
  auto zst = compress(dir / "image");
  for (std::uint64_t at : {std::uint64_t{5 * MiB + 123}, std::uint64_t{10 * MiB + 4000}}) {
    SCOPED_TRACE("byte " + std::to_string(at));
    make_slot(dir / "slot", 12 * MiB);
    auto stream = verified(zst);
    PlantByte plant{dir / "slot", at};
    SlotWriteOptions options;
    options.slot_name = "rootfs.b";
    options.before_read_back = std::ref(plant);
    auto result = write_slot_image(*stream, dir / "slot", options);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Errc::io);
    EXPECT_EQ(plant.planted, 1u);
    EXPECT_TRUE(contains(result.error().message, "slot rootfs.b: read-back differs at byte " + std::to_string(at)))
        << result.error().message;
  }
}

// Every chunk is read back once, each after it was written: the hook sees them in order, each
// one exactly once, together covering the image.
TEST(SlotWriter, ReadBackCoversEveryChunkOnceAfterItWasWritten) {
  TempDir dir;
  const std::uint64_t size = 7 * MiB + 333;
  make_image(dir / "image", size);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", 8 * MiB);
  std::vector<std::pair<std::uint64_t, std::size_t>> seen;
  bool all_written = true;
  SlotWriteOptions options;
  options.before_read_back = [&](std::uint64_t offset, std::size_t n) {
    seen.emplace_back(offset, n);
    // What the hook is told has been synced is in the slot already.
    all_written = all_written && read_range(dir / "slot", offset, n) == read_range(dir / "image", offset, n);
  };
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, dir / "slot", options);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_TRUE(all_written);
  std::uint64_t next = 0;
  for (auto [offset, n] : seen) {
    EXPECT_EQ(offset, next);
    next = offset + n;
  }
  EXPECT_EQ(next, size);
  EXPECT_EQ(seen.size(), 8u);
}

TEST(SlotWriter, SlotSizeAndRefusalOfOtherFileTypes) {
  TempDir dir;
  make_slot(dir / "slot", 3 * MiB + 7);
  auto size = slot_size(dir / "slot");
  ASSERT_TRUE(size) << size.error().message;
  EXPECT_EQ(*size, 3 * MiB + 7);
  stdfs::create_directory(dir / "folder");
  MemoryStream stream("");
  auto result = write_slot_image(stream, dir / "folder");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  auto missing = write_slot_image(stream, dir / "missing", named("rootfs.b"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_TRUE(contains(missing.error().message, "rootfs.b")) << missing.error().message;
}

// Run `body` in a child process; returns its wait status.
int in_child(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(SlotWriter, AFullDiskIsNoSpace) {
  TempDir dir;
  make_image(dir / "image", 4 * MiB);
  auto zst = compress(dir / "image");
  stdfs::create_directory(dir / "small");
  // A 1 MiB tmpfs in a private mount namespace of a child process: invisible to the host.
  int status = in_child([&]() -> int {
    if (::unshare(CLONE_NEWNS) != 0) return 10;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 10;
    if (::mount("tmpfs", (dir / "small").c_str(), "tmpfs", 0, "size=1m") != 0) return 10;
    auto slot = dir / "small" / "slot";
    { std::ofstream create(slot); }
    stdfs::resize_file(slot, 8 * MiB);  // sparse: it fills up as it is written
    FileStream stream(zst);
    auto result = write_slot_image(stream, slot, named("rootfs.b"));
    if (result) return 1;
    if (result.error().code != Errc::no_space) return 2;
    if (!contains(result.error().message, "rootfs.b")) return 3;
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 10) GTEST_SKIP() << "SKIPPED LOUDLY: no permission for a private tmpfs (unshare/mount)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: another code, 3: the message lacks the slot name";
}

#ifdef EDDY_FAULT_INJECTION
TEST(SlotWriter, FaultPointsStopTheWriteWhereTheCrashMatrixAsks) {
  TempDir dir;
  make_image(dir / "image", 16 * MiB);
  auto zst = compress(dir / "image");
  for (std::string point : {"slot:written-25%", "slot:written-50%", "slot:before-fsync", "slot:before-verify"}) {
    make_slot(dir / "slot", 16 * MiB);
    int status = in_child([&] {
      ::setenv("EDDY_FAULT_KILL_AT", point.c_str(), 1);
      FileStream stream(zst);
      return write_slot_image(stream, dir / "slot") ? 0 : 1;
    });
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << point;
  }
}
#endif

std::uint64_t vm_hwm_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6));
  return 0;
}

// Peak resident memory of the pipeline in a process of its own: this test binary re-runs
// itself with only the disabled child test below, which reads the kernel's high-water mark
// (VmHWM) after the write. EDDY_SLOT_BENCH_MIB=256 runs it with a 256 MiB image.
TEST(SlotWriter, PeakMemoryStaysWellUnder32MiB) {
  if (!eddy::testing::emulator().empty())
    GTEST_SKIP() << "not under qemu-user (cross build): the peak RSS would include the emulator's own "
                    "memory (about 28 MiB before any work); the native suite checks this bound";
  const char* env = std::getenv("EDDY_SLOT_BENCH_MIB");
  const std::uint64_t mib = env ? std::stoull(env) : 64;
  TempDir dir;
  make_image(dir / "image", mib * MiB);
  auto zst = compress(dir / "image");
  make_slot(dir / "slot", mib * MiB);
  auto self = stdfs::read_symlink("/proc/self/exe");
  auto started = std::chrono::steady_clock::now();
  auto child = run({self.string(), "--gtest_filter=SlotWriterMemory.DISABLED_Child", "--gtest_also_run_disabled_tests"},
                   {}, {{"EDDY_SLOT_MEMORY_ZST", zst.string()}, {"EDDY_SLOT_MEMORY_SLOT", (dir / "slot").string()}});
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(child.exit_code, 0) << child.output;
  auto at = child.output.find("VmHWM ");
  ASSERT_NE(at, std::string::npos) << child.output;
  unsigned long before = 0, peak = 0;  // %lu on 32-bit targets too
  ASSERT_EQ(std::sscanf(child.output.c_str() + at, "VmHWM %lu %lu", &before, &peak), 2) << child.output;
  std::printf(
      "[ MEMORY   ] %lu MiB image (zstd -3) into a file slot: peak RSS of the process %lu KiB "
      "(%lu KiB before the write), %.2f s with start-up\n",
      static_cast<unsigned long>(mib), peak, before, took);
  EXPECT_LT(peak, 32u * 1024u);
}

TEST(SlotWriterMemory, DISABLED_Child) {
  const char* zst = std::getenv("EDDY_SLOT_MEMORY_ZST");
  const char* slot = std::getenv("EDDY_SLOT_MEMORY_SLOT");
  ASSERT_TRUE(zst && slot);
  std::uint64_t before = vm_hwm_kib();
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, slot);
  ASSERT_TRUE(result) << result.error().message;
  std::printf("VmHWM %lu %lu\n", static_cast<unsigned long>(before), static_cast<unsigned long>(vm_hwm_kib()));
}

TEST(SlotWriter, WritesToALoopDevice) {
  TempDir dir;
  make_slot(dir / "backing", 16 * MiB);
  auto attach = run({"losetup", "--find", "--show", (dir / "backing").string()});
  if (attach.exit_code != 0) GTEST_SKIP() << "SKIPPED LOUDLY: losetup is not permitted here: " << attach.output;
  std::string device = attach.output.substr(0, attach.output.find('\n'));
  struct Detach {
    std::string device;
    ~Detach() { run({"losetup", "-d", device}); }
  } detach{device};

  auto size = slot_size(device);
  ASSERT_TRUE(size) << size.error().message;
  EXPECT_EQ(*size, 16 * MiB);
  make_image(dir / "image", 10 * MiB + 4096);
  auto zst = compress(dir / "image");
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, device, named("rootfs.b"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->image_sha256, sha256_of(dir / "image"));
  EXPECT_TRUE(slot_starts_with(device, dir / "image"));
}

// The read-back must read the device, not the page cache: a byte changed underneath the block
// device (in the loop device's backing file, which the slot's cached pages know nothing of) once
// its chunk was synced is found, in a chunk read back while later ones are written, and in the
// last chunk (whose pages the write-behind has not dropped: it is read back after fdatasync). The image's
// length is not a multiple of the block size, so the direct reads' last block reaches past it.
TEST(SlotWriter, ReadBackReadsTheDeviceNotThePageCache) {
  TempDir dir;
  make_slot(dir / "backing", 16 * MiB);
  auto attach = run({"losetup", "--find", "--show", (dir / "backing").string()});
  if (attach.exit_code != 0) GTEST_SKIP() << "SKIPPED LOUDLY: losetup is not permitted here: " << attach.output;
  std::string device = attach.output.substr(0, attach.output.find('\n'));
  struct Detach {
    std::string device;
    ~Detach() { run({"losetup", "-d", device}); }
  } detach{device};

  make_image(dir / "image", 10 * MiB + 1000);
  auto zst = compress(dir / "image");
  for (std::uint64_t at : {std::uint64_t{1 * MiB + 17}, std::uint64_t{10 * MiB + 500}}) {
    SCOPED_TRACE("byte " + std::to_string(at));
    PlantByte plant{dir / "backing", at, 0x40};
    SlotWriteOptions options;
    options.slot_name = "rootfs.b";
    options.before_read_back = std::ref(plant);
    auto stream = verified(zst);
    auto result = write_slot_image(*stream, device, options);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Errc::io);
    EXPECT_EQ(plant.planted, 1u);
    EXPECT_TRUE(contains(result.error().message, "read-back differs at byte " + std::to_string(at)))
        << result.error().message;
  }
  // Untouched, the same write verifies.
  auto stream = verified(zst);
  auto result = write_slot_image(*stream, device, named("rootfs.b"));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->image_sha256, sha256_of(dir / "image"));
}

// A /dev tree as udev makes it, in a temporary folder.
class FakeDev {
 public:
  FakeDev() {
    for (auto name : {"sda1", "sda2", "mmcblk0p3"}) eddy::testing::write_file(dir_ / "dev" / name, "");
    link("by-partuuid", "6c4e0a2b-02", "sda2");
    link("by-partlabel", "rootfs.b", "sda2");
    link("by-uuid", "0a1b2c3d-4e5f-6789-abcd-ef0123456789", "mmcblk0p3");
    link("by-label", "root\\x20fs", "sda1");
    link("by-label", "broken", "sdz9");
  }
  stdfs::path dev() const { return dir_ / "dev"; }

 private:
  void link(const std::string& kind, const std::string& name, const std::string& target) {
    stdfs::create_directories(dir_ / "dev" / "disk" / kind);
    stdfs::create_symlink("../../" + target, dir_ / "dev" / "disk" / kind / name);
  }
  TempDir dir_;
};

TEST(ResolveSlotDevice, FollowsTheUdevLinks) {
  FakeDev fake;
  auto dev = stdfs::canonical(fake.dev());
  auto check = [&](const std::string& spec, const std::string& expected) {
    auto got = resolve_slot_device(spec, fake.dev());
    ASSERT_TRUE(got) << spec << ": " << got.error().message;
    EXPECT_EQ(*got, dev / expected) << spec;
  };
  check("PARTUUID=6c4e0a2b-02", "sda2");
  check("PARTUUID=6C4E0A2B-02", "sda2");
  check("PARTLABEL=rootfs.b", "sda2");
  check("UUID=0A1B2C3D-4E5F-6789-ABCD-EF0123456789", "mmcblk0p3");
  check("LABEL=root fs", "sda1");
  check("LABEL=\"root fs\"", "sda1");
}

TEST(ResolveSlotDevice, PathsUnderDevAndFilesStandingInForSlots) {
  FakeDev fake;
  auto got = resolve_slot_device("/dev/mmcblk0p3", fake.dev());
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, fake.dev() / "mmcblk0p3");
  TempDir dir;
  eddy::testing::write_file(dir / "slot-b.img", "");
  got = resolve_slot_device((dir / "slot-b.img").string(), fake.dev());
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, dir / "slot-b.img");
}

TEST(ResolveSlotDevice, NamesWhatIsMissingAndRefusesUnknownForms) {
  FakeDev fake;
  for (std::string spec : {"PARTUUID=deadbeef-01", "LABEL=nothing", "/dev/sdq1", "LABEL=broken"}) {
    auto got = resolve_slot_device(spec, fake.dev());
    ASSERT_FALSE(got) << spec;
    EXPECT_EQ(got.error().code, Errc::not_found) << spec;
    EXPECT_TRUE(contains(got.error().message, spec.substr(0, spec.find('=')))) << got.error().message;
  }
  for (std::string spec : {"", "sda2", "ID=3", "PARTUUID="}) {
    auto got = resolve_slot_device(spec, fake.dev());
    ASSERT_FALSE(got) << spec;
    EXPECT_EQ(got.error().code, Errc::invalid_argument) << spec;
  }
}

}  // namespace
}  // namespace eddy::ota
