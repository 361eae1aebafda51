// `eddy release delta` as a real process on real files.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/support.hpp"

namespace {

namespace stdfs = std::filesystem;
using eddy::testing::run;
using eddy::testing::run_ok;
using eddy::testing::TempDir;
using nlohmann::json;

std::string sha256_of(const stdfs::path& path) { return run_ok({"sha256sum", path.string()}).substr(0, 64); }

// 4 MiB of pseudo-random data, and a copy with 64 KiB rewritten in the middle.
void make_images(const TempDir& dir) {
  run_ok({"sh", "-c",
          "head -c 4194304 /dev/urandom > base.img && cp base.img new.img && "
          "head -c 65536 /dev/urandom | dd of=new.img bs=65536 seek=20 conv=notrunc status=none"},
         dir.path());
}

TEST(EddyReleaseDelta, PrintsTheReleasesDeltaEntry) {
  TempDir dir;
  make_images(dir);
  auto result = run({eddy::testing::eddy_path().string(), "release", "delta", "--base", (dir / "base.img").string(),
                     "--image", (dir / "new.img").string(), "--out", (dir / "d.zst").string(), "--level", "3"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto size = stdfs::file_size(dir / "d.zst");
  EXPECT_LT(size, 200u * 1024u);
  EXPECT_NE(result.output.find("deltas:\n  - from_sha256: " + sha256_of(dir / "base.img") + "\n"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("    from_size: 4194304\n"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("    image_sha256: " + sha256_of(dir / "new.img") + "\n"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("    path: \"" + (dir / "d.zst").string() + "\"\n"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("    sha256: " + sha256_of(dir / "d.zst") + "\n"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("    size: " + std::to_string(size) + "\n"), std::string::npos) << result.output;

  // zstd itself rebuilds the new image from it.
  run_ok({"zstd", "-q", "-d", "-f", "--long=31", "--patch-from=base.img", "d.zst", "-o", "rebuilt.img"}, dir.path());
  EXPECT_EQ(sha256_of(dir / "rebuilt.img"), sha256_of(dir / "new.img"));
}

TEST(EddyReleaseDelta, JsonAndUrl) {
  TempDir dir;
  make_images(dir);
  auto result = run({eddy::testing::eddy_path().string(), "release", "delta", "--base", (dir / "base.img").string(),
                     "--image", (dir / "new.img").string(), "--out", (dir / "d.zst").string(), "--level", "1", "--url",
                     "https://releases.example/rootfs-2.0.delta.zst", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto out = json::parse(result.output);
  ASSERT_EQ(out["deltas"].size(), 1u);
  const auto& entry = out["deltas"][0];
  EXPECT_EQ(entry["from_sha256"], sha256_of(dir / "base.img"));
  EXPECT_EQ(entry["from_size"], 4194304);
  EXPECT_EQ(entry["image_sha256"], sha256_of(dir / "new.img"));
  EXPECT_EQ(entry["url"], "https://releases.example/rootfs-2.0.delta.zst");
  EXPECT_FALSE(entry.contains("path"));
  EXPECT_EQ(entry["sha256"], sha256_of(dir / "d.zst"));
  EXPECT_EQ(entry["size"], stdfs::file_size(dir / "d.zst"));
  EXPECT_EQ(out["image"]["sha256"], sha256_of(dir / "new.img"));
}

TEST(EddyReleaseDelta, MissingInputAndBadArgumentsExitTwo) {
  TempDir dir;
  auto eddy = eddy::testing::eddy_path().string();
  auto missing = run({eddy, "release", "delta", "--base", (dir / "nope.img").string(), "--image",
                      (dir / "nope.img").string(), "--out", (dir / "d.zst").string()});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("nope.img"), std::string::npos) << missing.output;
  EXPECT_FALSE(stdfs::exists(dir / "d.zst"));
  auto no_out = run({eddy, "release", "delta", "--base", "a", "--image", "b"});
  EXPECT_EQ(no_out.exit_code, 2) << no_out.output;
  auto level = run({eddy, "release", "delta", "--base", "a", "--image", "b", "--out", "c", "--level", "40"});
  EXPECT_EQ(level.exit_code, 2) << level.output;
  auto group = run({eddy, "release"});
  EXPECT_EQ(group.exit_code, 2) << group.output;
}

}  // namespace
