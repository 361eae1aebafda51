#include "ota/delta.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "ota/payload.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

namespace stdfs = std::filesystem;
using eddy::testing::run;
using eddy::testing::run_ok;
using eddy::testing::TempDir;

constexpr std::uint64_t MiB = 1u << 20;
constexpr std::size_t block = 4096;

// Two versions of a root filesystem image: 4 KiB blocks, pseudo-random (incompressible) except
// every fifth, zero (free space). The new version rewrites a few "files" (runs of 64 blocks at
// spread-out places) so that `changed_percent` of the blocks differ. Written in pieces.
struct Versions {
  stdfs::path base;
  stdfs::path image;
};

std::uint64_t next(std::uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

void fill_block(std::string& data, std::uint64_t seed) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
  for (std::size_t i = 0; i < data.size(); i += 8) {
    std::uint64_t v = next(x);
    std::memcpy(data.data() + i, &v, 8);
  }
}

Versions make_versions(const stdfs::path& dir, std::uint64_t size, double changed_percent, std::string tag = "") {
  Versions v{dir / ("base" + tag + ".img"), dir / ("new" + tag + ".img")};
  const std::uint64_t blocks = size / block;
  const std::uint64_t run_blocks = 64;
  const std::uint64_t runs = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(static_cast<double>(blocks) * changed_percent / 100.0) / run_blocks);
  const std::uint64_t stride = blocks / runs;
  std::ofstream base(v.base, std::ios::binary | std::ios::trunc), image(v.image, std::ios::binary | std::ios::trunc);
  std::string data(block, '\0');
  for (std::uint64_t b = 0; b < blocks; ++b) {
    bool zero = b % 5 == 4;
    if (zero)
      std::fill(data.begin(), data.end(), '\0');
    else
      fill_block(data, b);
    base.write(data.data(), block);
    bool changed = (b % stride) >= stride / 2 && (b % stride) < stride / 2 + run_blocks;
    if (changed) fill_block(data, b + (1ull << 40));
    image.write(data.data(), block);
  }
  return v;
}

std::string sha256_of(const stdfs::path& path) { return run_ok({"sha256sum", path.string()}).substr(0, 64); }

void make_slot(const stdfs::path& path, std::uint64_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::string chunk(MiB, '\xA5');
  for (std::uint64_t at = 0; at < size; at += chunk.size())
    out.write(chunk.data(), static_cast<std::streamsize>(std::min<std::uint64_t>(chunk.size(), size - at)));
}

bool slot_untouched(const stdfs::path& slot) {
  std::ifstream in(slot, std::ios::binary);
  std::string chunk(MiB, '\0');
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    auto n = static_cast<std::size_t>(in.gcount());
    if (chunk.find_first_not_of('\xA5') < n) return false;
  }
  return true;
}

bool slot_starts_with(const stdfs::path& slot, const stdfs::path& image) {
  return run({"cmp", "-n", std::to_string(stdfs::file_size(image)), slot.string(), image.string()}).exit_code == 0;
}

class FileStream final : public ByteStream {
 public:
  explicit FileStream(const stdfs::path& path) : in_(path, std::ios::binary) {}
  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    in_.read(buffer, static_cast<std::streamsize>(std::min<std::size_t>(size, 64 * 1024)));
    return static_cast<std::size_t>(in_.gcount());
  }

 private:
  std::ifstream in_;
};

std::unique_ptr<VerifyingStream> verified(const stdfs::path& delta) {
  return std::make_unique<VerifyingStream>(std::make_unique<FileStream>(delta), sha256_of(delta),
                                           stdfs::file_size(delta), "rootfs 2.0 delta");
}

stdfs::path zstd_patch_from(const Versions& v, const stdfs::path& out, int level) {
  std::vector<std::string> argv{"zstd", "-q", "-f", "-" + std::to_string(level)};
  if (level > 19) argv.push_back("--ultra");
  argv.insert(argv.end(), {"--patch-from=" + v.base.string(), v.image.string(), "-o", out.string()});
  run_ok(argv);
  return out;
}

SlotWriteOptions expecting(const stdfs::path& image) {
  SlotWriteOptions options;
  options.slot_name = "rootfs.b";
  options.expected_image_sha256 = sha256_of(image);
  return options;
}

class DeltaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    versions_ = make_versions(dir_->path(), 32 * MiB, 2.0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  stdfs::path path(const std::string& name) const { return dir_->path() / name; }
  Expected<SlotWriteResult> apply(const stdfs::path& delta, const stdfs::path& slot,
                                  const SlotWriteOptions& options) const {
    auto stream = verified(delta);
    return write_slot_from_delta(*stream, versions_.base, sha256_of(versions_.base), stdfs::file_size(versions_.base),
                                 slot, options);
  }
  static TempDir* dir_;
  static Versions versions_;
};
TempDir* DeltaTest::dir_ = nullptr;
Versions DeltaTest::versions_;

TEST_F(DeltaTest, OurDeltaRebuildsTheImageIntoTheSlot) {
  auto info = make_delta(versions_.base, versions_.image, path("ours-3.zst"), 3);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->base_sha256, sha256_of(versions_.base));
  EXPECT_EQ(info->image_sha256, sha256_of(versions_.image));
  EXPECT_EQ(info->delta_sha256, sha256_of(path("ours-3.zst")));
  EXPECT_EQ(info->delta_size, stdfs::file_size(path("ours-3.zst")));
  EXPECT_EQ(info->image_size, 32 * MiB);
  EXPECT_EQ(info->window_log, 26);
  EXPECT_TRUE(info->long_distance_matching);
  EXPECT_LT(info->delta_size, 32 * MiB / 10);
  EXPECT_FALSE(stdfs::exists(path("ours-3.zst.tmp")));

  // The zstd CLI agrees that it is a --patch-from delta of this base.
  run_ok({"zstd", "-q", "-d", "-f", "--long=31", "--patch-from=" + versions_.base.string(), path("ours-3.zst").string(),
          "-o", path("cli-decoded.img").string()});
  EXPECT_EQ(sha256_of(path("cli-decoded.img")), info->image_sha256);

  make_slot(path("slot"), 40 * MiB);
  std::vector<SlotWriteProgress> reports;
  auto options = expecting(versions_.image);
  options.progress = [&](const SlotWriteProgress& p) { reports.push_back(p); };
  auto result = apply(path("ours-3.zst"), path("slot"), options);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->image_bytes, 32 * MiB);
  EXPECT_EQ(result->compressed_bytes, info->delta_size);
  EXPECT_EQ(result->image_sha256, info->image_sha256);
  EXPECT_TRUE(slot_starts_with(path("slot"), versions_.image));
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back().phase, SlotWriteProgress::Phase::verifying);
  EXPECT_EQ(reports.back().bytes_out, 32 * MiB);
  EXPECT_EQ(reports.front().image_size, 32 * MiB);
}

TEST_F(DeltaTest, ZstdCliDeltasApplyAndOursAreAsSmall) {
  for (int level : {3, 19}) {
    SCOPED_TRACE("level " + std::to_string(level));
    auto theirs = zstd_patch_from(versions_, path("cli-" + std::to_string(level) + ".zst"), level);
    auto ours = make_delta(versions_.base, versions_.image, path("ours-" + std::to_string(level) + ".zst"), level);
    ASSERT_TRUE(ours) << ours.error().message;
    const auto their_size = stdfs::file_size(theirs);
    std::printf(
        "[ DELTA    ] 32 MiB image, 2%% of blocks changed, level %d: make_delta %llu bytes, zstd "
        "--patch-from %llu bytes (%.3fx)\n",
        level, static_cast<unsigned long long>(ours->delta_size), static_cast<unsigned long long>(their_size),
        static_cast<double>(ours->delta_size) / static_cast<double>(their_size));
    EXPECT_LE(static_cast<double>(ours->delta_size), 1.5 * static_cast<double>(their_size));

    for (const auto& delta : {theirs, path("ours-" + std::to_string(level) + ".zst")}) {
      make_slot(path("slot"), 32 * MiB);
      auto result = apply(delta, path("slot"), expecting(versions_.image));
      ASSERT_TRUE(result) << delta << ": " << result.error().message;
      EXPECT_TRUE(slot_starts_with(path("slot"), versions_.image)) << delta;
    }
  }
}

TEST_F(DeltaTest, AnotherBaseIsRefusedBeforeTheSlotIsTouched) {
  auto info = make_delta(versions_.base, versions_.image, path("d.zst"), 3);
  ASSERT_TRUE(info) << info.error().message;
  make_slot(path("slot"), 32 * MiB);

  // The active slot holds something else (here: the new image itself).
  auto stream = verified(path("d.zst"));
  auto result = write_slot_from_delta(*stream, versions_.image, info->base_sha256, info->base_size, path("slot"),
                                      expecting(versions_.image));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::digest_mismatch);
  EXPECT_TRUE(result.error().message.find("delta base does not match") != std::string::npos) << result.error().message;
  EXPECT_TRUE(result.error().message.find(versions_.image.string()) != std::string::npos) << result.error().message;
  EXPECT_TRUE(slot_untouched(path("slot")));

  // A base shorter than the release says.
  run_ok({"truncate", "-s", "1M", path("short.img").string()});
  stream = verified(path("d.zst"));
  result = write_slot_from_delta(*stream, path("short.img"), info->base_sha256, info->base_size, path("slot"),
                                 expecting(versions_.image));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::digest_mismatch);
  EXPECT_TRUE(slot_untouched(path("slot")));

  // A longer active slot is fine: only its first base_size bytes are the image.
  run_ok({"cp", versions_.base.string(), path("long-base.img").string()});
  run_ok({"truncate", "-s", "40M", path("long-base.img").string()});
  stream = verified(path("d.zst"));
  result = write_slot_from_delta(*stream, path("long-base.img"), info->base_sha256, info->base_size, path("slot"),
                                 expecting(versions_.image));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_TRUE(slot_starts_with(path("slot"), versions_.image));
}

TEST_F(DeltaTest, TruncatedOrCorruptDeltasAreRefused) {
  auto info = make_delta(versions_.base, versions_.image, path("d.zst"), 3);
  ASSERT_TRUE(info) << info.error().message;
  std::string bytes = eddy::testing::read_file(path("d.zst"));
  const std::string base_sha = info->base_sha256;

  auto attempt = [&](const std::string& content) {
    eddy::testing::write_file(path("bad.zst"), content);
    make_slot(path("slot"), 32 * MiB);
    FileStream stream(path("bad.zst"));  // unverified: the decoder itself must notice
    return write_slot_from_delta(stream, versions_.base, base_sha, info->base_size, path("slot"),
                                 expecting(versions_.image));
  };
  for (std::size_t keep : {std::size_t{0}, std::size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    auto result = attempt(bytes.substr(0, keep));
    ASSERT_FALSE(result) << "kept " << keep;
    EXPECT_EQ(result.error().code, Errc::invalid_argument) << result.error().message;
    EXPECT_TRUE(result.error().message.find("rootfs.b") != std::string::npos) << result.error().message;
  }
  std::string corrupt = bytes;
  corrupt[corrupt.size() / 2] = static_cast<char>(corrupt[corrupt.size() / 2] ^ 0x5a);
  auto result = attempt(corrupt);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument) << result.error().message;

  result = attempt(bytes + "trailing");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument) << result.error().message;

  result = attempt("not a zstd frame at all, just text");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument) << result.error().message;

  // Through the verifying stream, a damaged download is the stream's digest error.
  eddy::testing::write_file(path("bad.zst"), corrupt);
  auto stream = std::make_unique<VerifyingStream>(std::make_unique<FileStream>(path("bad.zst")), info->delta_sha256,
                                                  info->delta_size, "rootfs 2.0 delta");
  result = write_slot_from_delta(*stream, versions_.base, base_sha, info->base_size, path("slot"),
                                 expecting(versions_.image));
  ASSERT_FALSE(result);
}

TEST_F(DeltaTest, RebuiltImageOfAnotherDigestIsRefused) {
  auto info = make_delta(versions_.base, versions_.image, path("d.zst"), 3);
  ASSERT_TRUE(info) << info.error().message;
  make_slot(path("slot"), 32 * MiB);
  SlotWriteOptions options;
  options.slot_name = "rootfs.b";
  options.expected_image_sha256 = std::string(64, 'a');
  auto result = apply(path("d.zst"), path("slot"), options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::digest_mismatch);
  EXPECT_TRUE(result.error().message.find(std::string(64, 'a')) != std::string::npos) << result.error().message;
}

TEST_F(DeltaTest, ReadBackDifferenceIsAnIoError) {
  auto info = make_delta(versions_.base, versions_.image, path("d.zst"), 3);
  ASSERT_TRUE(info) << info.error().message;
  make_slot(path("slot"), 32 * MiB);
  auto options = expecting(versions_.image);
  // Once the chunk holding the byte is on the device, before it is read back; '\x42' is not the
  // image's byte there (the test would say so).
  const std::uint64_t at = 5 * MiB + 17;
  int planted = 0;
  options.before_read_back = [&](std::uint64_t offset, std::size_t size) {
    if (at < offset || at >= offset + size) return;
    std::fstream f(path("slot"), std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(static_cast<std::streamoff>(at));
    char was = 0;
    f.get(was);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(was ^ 0x42));
    ++planted;
  };
  auto result = apply(path("d.zst"), path("slot"), options);
  ASSERT_FALSE(result);
  EXPECT_EQ(planted, 1);
  EXPECT_EQ(result.error().code, Errc::io) << result.error().message;
  EXPECT_TRUE(result.error().message.find("read-back differs at byte " + std::to_string(at)) != std::string::npos)
      << result.error().message;
}

TEST_F(DeltaTest, ImageLargerThanTheSlotIsRefusedBeforeWriting) {
  auto info = make_delta(versions_.base, versions_.image, path("d.zst"), 3);
  ASSERT_TRUE(info) << info.error().message;
  make_slot(path("small-slot"), 16 * MiB);
  auto result = apply(path("d.zst"), path("small-slot"), expecting(versions_.image));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::too_large);
  EXPECT_TRUE(slot_untouched(path("small-slot")));
}

TEST_F(DeltaTest, WindowAboveTheConfiguredMaximumIsRefused) {
  auto info = make_delta(versions_.base, versions_.image, path("d.zst"), 3);
  ASSERT_TRUE(info) << info.error().message;
  make_slot(path("slot"), 32 * MiB);
  auto options = expecting(versions_.image);
  options.max_delta_window_log = 24;
  auto result = apply(path("d.zst"), path("slot"), options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  EXPECT_TRUE(result.error().message.find("max_delta_window_log") != std::string::npos) << result.error().message;
  EXPECT_TRUE(slot_untouched(path("slot")));
}

TEST_F(DeltaTest, MakeDeltaNamesAMissingInputAndABadLevel) {
  auto missing = make_delta(path("nope.img"), versions_.image, path("x.zst"), 3);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_TRUE(missing.error().message.find("nope.img") != std::string::npos) << missing.error().message;
  auto level = make_delta(versions_.base, versions_.image, path("x.zst"), 0);
  ASSERT_FALSE(level);
  EXPECT_EQ(level.error().code, Errc::invalid_argument);
  EXPECT_FALSE(stdfs::exists(path("x.zst")));
}

std::uint64_t vm_hwm_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6));
  return 0;
}

// Peak resident memory of applying a delta, in a process of its own (this binary re-run with
// only the disabled child test). EDDY_DELTA_BENCH_MIB=256 runs it with a 256 MiB image and also
// prints the delta, zstd --patch-from and full-image sizes for bench/RESULTS.md.
TEST(DeltaMemory, PeakMemoryStaysBounded) {
  if (!eddy::testing::emulator().empty())
    GTEST_SKIP() << "not under qemu-user (cross build): the peak RSS would include the emulator's own "
                    "memory (about 28 MiB before any work); the native suite checks this bound";
  const char* env = std::getenv("EDDY_DELTA_BENCH_MIB");
  const std::uint64_t mib = env ? std::stoull(env) : 64;
  TempDir dir;
  auto v = make_versions(dir.path(), mib * MiB, 2.0);
  auto info = make_delta(v.base, v.image, dir / "delta.zst", 19);
  ASSERT_TRUE(info) << info.error().message;
  if (env) {
    auto theirs = zstd_patch_from(v, dir / "cli.zst", 19);
    run_ok({"zstd", "-q", "-f", "-19", v.image.string(), "-o", (dir / "full.zst").string()});
    std::printf(
        "[ DELTA    ] %llu MiB image, 2%% of blocks changed, level 19: make_delta %llu bytes, zstd "
        "--patch-from %llu bytes, full image zstd -19 %llu bytes\n",
        static_cast<unsigned long long>(mib), static_cast<unsigned long long>(info->delta_size),
        static_cast<unsigned long long>(stdfs::file_size(theirs)),
        static_cast<unsigned long long>(stdfs::file_size(dir / "full.zst")));
  }
  make_slot(dir / "slot", mib * MiB);
  auto self = stdfs::read_symlink("/proc/self/exe");
  auto started = std::chrono::steady_clock::now();
  auto child = run({self.string(), "--gtest_filter=DeltaMemory.DISABLED_Child", "--gtest_also_run_disabled_tests"}, {},
                   {{"EDDY_DELTA_MEMORY_DELTA", (dir / "delta.zst").string()},
                    {"EDDY_DELTA_MEMORY_BASE", v.base.string()},
                    {"EDDY_DELTA_MEMORY_BASE_SHA", info->base_sha256},
                    {"EDDY_DELTA_MEMORY_IMAGE_SHA", info->image_sha256},
                    {"EDDY_DELTA_MEMORY_SLOT", (dir / "slot").string()}});
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(child.exit_code, 0) << child.output;
  auto at = child.output.find("VmHWM ");
  ASSERT_NE(at, std::string::npos) << child.output;
  unsigned long before = 0, peak = 0;
  ASSERT_EQ(std::sscanf(child.output.c_str() + at, "VmHWM %lu %lu", &before, &peak), 2) << child.output;
  std::printf(
      "[ MEMORY   ] %llu MiB image from a %llu-byte delta into a file slot: peak RSS %lu KiB (%lu KiB "
      "before), %.2f s with start-up\n",
      static_cast<unsigned long long>(mib), static_cast<unsigned long long>(info->delta_size), peak, before, took);
  EXPECT_LT(peak, 32u * 1024u);
}

TEST(DeltaMemory, DISABLED_Child) {
  const char* delta = std::getenv("EDDY_DELTA_MEMORY_DELTA");
  const char* base = std::getenv("EDDY_DELTA_MEMORY_BASE");
  const char* base_sha = std::getenv("EDDY_DELTA_MEMORY_BASE_SHA");
  const char* image_sha = std::getenv("EDDY_DELTA_MEMORY_IMAGE_SHA");
  const char* slot = std::getenv("EDDY_DELTA_MEMORY_SLOT");
  ASSERT_TRUE(delta && base && base_sha && image_sha && slot);
  std::uint64_t before = vm_hwm_kib();
  auto stream = verified(delta);
  SlotWriteOptions options;
  options.expected_image_sha256 = image_sha;
  auto result = write_slot_from_delta(*stream, base, base_sha, stdfs::file_size(base), slot, options);
  ASSERT_TRUE(result) << result.error().message;
  std::printf("VmHWM %lu %lu\n", static_cast<unsigned long>(before), static_cast<unsigned long>(vm_hwm_kib()));
}

}  // namespace
}  // namespace eddy::ota
