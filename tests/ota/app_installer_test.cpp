#include "ota/app_installer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

namespace stdfs = std::filesystem;
using eddy::testing::read_file;
using eddy::testing::run_ok;
using eddy::testing::TempDir;
using eddy::testing::write_file;
using ::testing::HasSubstr;

// Everything a failed stage must leave as it was: the whole tree under versions/, the app
// folder's own entries (no stray current.tmp) and where `current` points.
struct Snapshot {
  std::vector<std::string> entries;
  std::string current;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const stdfs::path& app_dir) {
  Snapshot s;
  std::error_code ec;
  for (stdfs::recursive_directory_iterator it(app_dir, ec), end; !ec && it != end; it.increment(ec))
    s.entries.push_back(stdfs::relative(it->path(), app_dir).string());
  std::sort(s.entries.begin(), s.entries.end());
  s.current = stdfs::read_symlink(app_dir / "current", ec).string();
  return s;
}

unsigned mode_of(const stdfs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777u;
}

// A stream over a bundle that fails with `error` instead of reporting its end, the way the
// VerifyingStream reports a digest mismatch; or after `fail_after` bytes.
class FailingStream final : public ByteStream {
 public:
  FailingStream(std::string data, Error error, std::size_t fail_after = std::string::npos)
      : inner_(std::move(data)), error_(std::move(error)), fail_after_(fail_after) {}
  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    if (passed_ >= fail_after_) return std::unexpected(error_);
    auto n = inner_.read(buffer, std::min(size, fail_after_ - passed_));
    if (n && *n == 0) return std::unexpected(error_);
    if (n) passed_ += *n;
    return n;
  }

 private:
  MemoryStream inner_;
  Error error_;
  std::size_t fail_after_;
  std::size_t passed_ = 0;
};

// Counts what it hands out and whether its end was read.
class CountingStream final : public ByteStream {
 public:
  explicit CountingStream(std::string data) : inner_(std::move(data)) {}
  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    auto n = inner_.read(buffer, size);
    if (n && *n == 0) end_reached = true;
    return n;
  }
  bool end_reached = false;

 private:
  MemoryStream inner_;
};

class AppInstallerTest : public ::testing::Test {
 protected:
  AppTarget target() const {
    AppTarget t;
    t.name = "sensor-app";
    t.dir = app_dir_;
    return t;
  }

  // A real bundle: a tree packed by `tar` and compressed by `zstd`.
  std::string tar_zstd(const stdfs::path& tree, const std::string& name) {
    const stdfs::path out = tmp_ / (name + ".tar.zst");
    run_ok({"/bin/sh", "-c", "tar -C '" + tree.string() + "' -cf - . | zstd -q -c > '" + out.string() + "'"});
    return read_file(out);
  }

  std::string good_bundle(const std::string& tag) {
    const stdfs::path src = tmp_ / ("src-" + tag);
    stdfs::remove_all(src);
    stdfs::create_directories(src / "bin");
    stdfs::create_directories(src / "data");
    write_file(src / "bin" / "run.sh", "#!/bin/sh\necho " + tag + "\n");
    stdfs::permissions(src / "bin" / "run.sh", static_cast<stdfs::perms>(0755));
    write_file(src / "data" / "config.txt", "version=" + tag + "\n");
    stdfs::permissions(src / "data" / "config.txt", static_cast<stdfs::perms>(0640));
    stdfs::create_symlink("../data/config.txt", src / "bin" / "config");
    stdfs::create_hard_link(src / "data" / "config.txt", src / "data" / "config-link.txt");
    return tar_zstd(src, "good-" + tag);
  }

  // An archive crafted with Python's tarfile (entries `tar` itself would never write), then
  // compressed by the real `zstd`. `body` calls add_file(name, data, mode) and add(name, **attrs).
  std::string crafted(const std::string& name, const std::string& body) {
    const stdfs::path script = tmp_ / (name + ".py");
    write_file(script,
               "import io, sys, tarfile\n"
               "out = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)\n"
               "def add_file(name, data=b'', mode=0o644):\n"
               "    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode\n"
               "    out.addfile(ti, io.BytesIO(data))\n"
               "def add(name, **attrs):\n"
               "    ti = tarfile.TarInfo(name)\n"
               "    for k, v in attrs.items(): setattr(ti, k, v)\n"
               "    out.addfile(ti)\n" +
                   body +
                   "\nout.close()\n");
    const stdfs::path tar = tmp_ / (name + ".tar");
    run_ok({"python3", script.string(), tar.string()});
    run_ok({"zstd", "-q", "-f", tar.string(), "-o", tar.string() + ".zst"});
    return read_file(tar.string() + ".zst");
  }

  void install_first(AppInstaller& installer) {
    MemoryStream stream(good_bundle("1.0.0"));
    ASSERT_TRUE(installer.stage("1.0.0", stream));
    ASSERT_TRUE(installer.activate("1.0.0"));
  }

  // Stage `bundle` as 2.0.0 over an installed 1.0.0 and expect a refusal that changes nothing.
  std::string expect_refused(const std::string& bundle, Errc code, const std::string& needle,
                       std::uint64_t max_unpacked = 1ull << 30) {
    stdfs::remove_all(app_dir_);  // a test may try several bundles
    AppTarget t = target();
    t.max_unpacked_bytes = max_unpacked;
    AppInstaller installer(t);
    install_first(installer);
    const Snapshot before = snapshot(app_dir_);
    MemoryStream stream(bundle);
    auto result = installer.stage("2.0.0", stream);
    EXPECT_FALSE(result);
    if (result) return "staged";
    EXPECT_EQ(result.error().code, code) << result.error().message;
    EXPECT_THAT(result.error().message, HasSubstr(needle));
    EXPECT_THAT(result.error().message, HasSubstr("sensor-app"));
    EXPECT_EQ(snapshot(app_dir_), before);
    EXPECT_FALSE(stdfs::exists(app_dir_ / "versions" / ".staging-2.0.0"));
    EXPECT_FALSE(installer.is_staged("2.0.0"));
    EXPECT_EQ(installer.current_version(), "1.0.0");
    EXPECT_EQ(read_file(app_dir_ / "current" / "data" / "config.txt"), "version=1.0.0\n");
    return result.error().message;
  }

  TempDir tmp_;
  stdfs::path app_dir_ = tmp_ / "app";
};

TEST_F(AppInstallerTest, GoodBundleStagesAndActivates) {
  AppInstaller installer(target());
  EXPECT_EQ(installer.current_version(), std::nullopt);
  CountingStream stream(good_bundle("1.0.0"));
  ASSERT_TRUE(installer.stage("1.0.0", stream));
  EXPECT_TRUE(stream.end_reached);
  EXPECT_TRUE(installer.is_staged("1.0.0"));
  EXPECT_EQ(installer.versions(), std::vector<std::string>{"1.0.0"});
  EXPECT_EQ(installer.current_version(), std::nullopt);  // staged, not active

  ASSERT_TRUE(installer.activate("1.0.0"));
  EXPECT_EQ(installer.current_version(), "1.0.0");
  EXPECT_TRUE(stdfs::is_symlink(app_dir_ / "current"));
  EXPECT_EQ(stdfs::read_symlink(app_dir_ / "current"), "versions/1.0.0");

  const stdfs::path v = app_dir_ / "versions" / "1.0.0";
  EXPECT_EQ(read_file(v / "bin" / "run.sh"), "#!/bin/sh\necho 1.0.0\n");
  EXPECT_EQ(mode_of(v / "bin" / "run.sh"), 0755u);
  EXPECT_EQ(mode_of(v / "data" / "config.txt"), 0640u);
  EXPECT_EQ(mode_of(v), 0755u);
  EXPECT_TRUE(stdfs::is_symlink(v / "bin" / "config"));
  EXPECT_EQ(stdfs::read_symlink(v / "bin" / "config"), "../data/config.txt");
  EXPECT_EQ(read_file(v / "bin" / "config"), "version=1.0.0\n");
  EXPECT_EQ(read_file(v / "data" / "config-link.txt"), "version=1.0.0\n");
  EXPECT_EQ(eddy::testing::run({(app_dir_ / "current" / "bin" / "run.sh").string()}).output, "1.0.0\n");
  std::vector<std::string> in_versions;
  for (const auto& e : stdfs::directory_iterator(app_dir_ / "versions")) in_versions.push_back(e.path().filename());
  EXPECT_EQ(in_versions, std::vector<std::string>{"1.0.0"});  // no staging folder left
}

TEST_F(AppInstallerTest, CurrentNeverDisappearsWhileSwapped) {
  AppInstaller installer(target());
  for (const char* v : {"1.0.0", "2.0.0"}) {
    MemoryStream stream(good_bundle(v));
    ASSERT_TRUE(installer.stage(v, stream));
  }
  ASSERT_TRUE(installer.activate("1.0.0"));
  std::atomic<bool> done{false};
  std::atomic<int> missing{0}, checks{0};
  std::thread watcher([&] {
    const stdfs::path link = app_dir_ / "current";
    while (!done) {
      struct stat st {};
      if (::lstat(link.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) ++missing;
      ++checks;
    }
  });
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(installer.activate(i % 2 ? "1.0.0" : "2.0.0"));
  done = true;
  watcher.join();
  EXPECT_EQ(missing, 0) << "of " << checks << " checks";
  EXPECT_EQ(installer.current_version(), "1.0.0");
  EXPECT_FALSE(stdfs::exists(app_dir_ / "current.tmp"));
}

TEST_F(AppInstallerTest, ActivatingAnUnstagedVersionIsNotFound) {
  AppInstaller installer(target());
  install_first(installer);
  auto r = installer.activate("9.9.9");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_THAT(r.error().message, HasSubstr("9.9.9"));
  EXPECT_EQ(installer.current_version(), "1.0.0");
}

TEST_F(AppInstallerTest, VersionThatCannotNameAFolderIsRefused) {
  AppInstaller installer(target());
  for (const char* bad : {"", "..", "../x", "a/b", ".staging-1", "1 0"}) {
    MemoryStream stream(good_bundle(std::string("bad") + std::to_string(std::strlen(bad))));
    auto r = installer.stage(bad, stream);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << bad;
    stdfs::remove_all(tmp_ / ("src-bad" + std::to_string(std::strlen(bad))));
  }
  EXPECT_TRUE(installer.versions().empty());
}

TEST_F(AppInstallerTest, RestagingTheCurrentVersionIsAConflict) {
  AppInstaller installer(target());
  install_first(installer);
  const Snapshot before = snapshot(app_dir_);
  MemoryStream stream(good_bundle("again"));
  auto r = installer.stage("1.0.0", stream);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::conflict);
  EXPECT_THAT(r.error().message, HasSubstr("1.0.0"));
  EXPECT_EQ(snapshot(app_dir_), before);
}

TEST_F(AppInstallerTest, RestagingANonCurrentVersionReplacesIt) {
  AppInstaller installer(target());
  install_first(installer);
  MemoryStream first(good_bundle("first"));
  ASSERT_TRUE(installer.stage("2.0.0", first));
  MemoryStream second(good_bundle("second"));
  ASSERT_TRUE(installer.stage("2.0.0", second));
  EXPECT_EQ(read_file(app_dir_ / "versions" / "2.0.0" / "data" / "config.txt"), "version=second\n");
  EXPECT_EQ(installer.versions(), (std::vector<std::string>{"1.0.0", "2.0.0"}));
  EXPECT_EQ(installer.current_version(), "1.0.0");
}

TEST_F(AppInstallerTest, FailureLeavesAnExistingFolderOfThatVersionAlone) {
  AppInstaller installer(target());
  install_first(installer);
  MemoryStream first(good_bundle("first"));
  ASSERT_TRUE(installer.stage("2.0.0", first));
  const Snapshot before = snapshot(app_dir_);
  FailingStream bad(good_bundle("second"), Error{Errc::digest_mismatch, "sha256 mismatch"});
  auto r = installer.stage("2.0.0", bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::digest_mismatch);
  EXPECT_EQ(snapshot(app_dir_), before);
  EXPECT_EQ(read_file(app_dir_ / "versions" / "2.0.0" / "data" / "config.txt"), "version=first\n");
}

TEST_F(AppInstallerTest, AbsolutePathIsRefused) {
  auto e = expect_refused(crafted("abs", "add_file('ok.txt', b'ok')\nadd_file('/tmp/evil', b'x')"),
                          Errc::unsafe_path, "\"/tmp/evil\"");
  EXPECT_THAT(e, HasSubstr("absolute"));
}

TEST_F(AppInstallerTest, DotDotEntryIsRefused) {
  expect_refused(crafted("dotdot", "add_file('ok.txt', b'ok')\nadd_file('../x', b'x')"),
                 Errc::unsafe_path, "\"../x\"");
  EXPECT_FALSE(stdfs::exists(app_dir_ / "versions" / "x"));
}

TEST_F(AppInstallerTest, NestedDotDotEntryIsRefused) {
  expect_refused(crafted("nested", "add_file('a/ok.txt', b'ok')\nadd_file('a/../../x', b'x')"),
                 Errc::unsafe_path, "\"a/../../x\"");
  EXPECT_FALSE(stdfs::exists(app_dir_ / "versions" / "x"));
}

TEST_F(AppInstallerTest, SymlinkToAbsolutePathIsRefused) {
  expect_refused(crafted("abslink", "add('passwd', type=tarfile.SYMTYPE, linkname='/etc/passwd')"),
                 Errc::unsafe_path, "\"passwd\"");
}

TEST_F(AppInstallerTest, SymlinkLeavingTheFolderIsRefused) {
  auto e = expect_refused(crafted("uplink", "add('sub/up', type=tarfile.SYMTYPE, linkname='../../x')"),
                          Errc::unsafe_path, "\"sub/up\"");
  EXPECT_THAT(e, HasSubstr("../../x"));
}

TEST_F(AppInstallerTest, SymlinkLeavingThroughAnotherLinkIsRefused) {
  // Read as text, "d/.." is the version folder; but d is a link to ".", so it is its parent.
  expect_refused(crafted("chain", "add('d', type=tarfile.SYMTYPE, linkname='.')\n"
                                  "add('e', type=tarfile.SYMTYPE, linkname='d/..')"),
                 Errc::unsafe_path, "\"e\"");
}

TEST_F(AppInstallerTest, WritingThroughALinkIsRefused) {
  auto e = expect_refused(crafted("through", "add('sub', type=tarfile.DIRTYPE, mode=0o755)\n"
                                             "add('p', type=tarfile.SYMTYPE, linkname='sub')\n"
                                             "add_file('p/f', b'x')"),
                          Errc::unsafe_path, "\"p/f\"");
  EXPECT_THAT(e, HasSubstr("link"));
}

TEST_F(AppInstallerTest, HardLinkToOutsideIsRefused) {
  expect_refused(crafted("hardabs", "add('pw', type=tarfile.LNKTYPE, linkname='/etc/passwd')"),
                 Errc::unsafe_path, "\"pw\"");
  expect_refused(crafted("hardup", "add('pw', type=tarfile.LNKTYPE, linkname='../../../etc/passwd')"),
                 Errc::unsafe_path, "\"pw\"");
}

TEST_F(AppInstallerTest, DeviceNodeIsRefused) {
  auto e = expect_refused(
      crafted("chr", "add('null', type=tarfile.CHRTYPE, devmajor=1, devminor=3)"),
      Errc::unsafe_path, "\"null\"");
  EXPECT_THAT(e, HasSubstr("character device"));
  e = expect_refused(crafted("blk", "add('sda', type=tarfile.BLKTYPE, devmajor=8, devminor=0)"),
                     Errc::unsafe_path, "\"sda\"");
  EXPECT_THAT(e, HasSubstr("block device"));
}

TEST_F(AppInstallerTest, FifoIsRefused) {
  auto e = expect_refused(crafted("fifo", "add_file('ok', b'ok')\nadd('pipe', type=tarfile.FIFOTYPE)"),
                          Errc::unsafe_path, "\"pipe\"");
  EXPECT_THAT(e, HasSubstr("FIFO"));
}

TEST_F(AppInstallerTest, CompressionBombIsTooLarge) {
  // 16 MiB of zeros compress to a few hundred bytes.
  const std::string bomb = crafted("bomb", "add_file('zeros', bytes(16 << 20))");
  EXPECT_LT(bomb.size(), 64u * 1024);
  auto e = expect_refused(bomb, Errc::too_large, "\"zeros\"", 1u << 20);
  EXPECT_THAT(e, HasSubstr(std::to_string(1u << 20)));
}

TEST_F(AppInstallerTest, CorruptZstdIsRefused) {
  std::string bundle = crafted("corrupt", "add_file('data', bytes(range(256)) * 64)");
  for (std::size_t i = bundle.size() / 3; i < bundle.size() / 3 + 32; ++i)
    bundle[i] = static_cast<char>(bundle[i] ^ 0x5a);
  expect_refused(bundle, Errc::invalid_argument, "zstd");
}

TEST_F(AppInstallerTest, TruncatedZstdIsRefused) {
  std::string bundle = crafted("truncated", "add_file('data', bytes(range(256)) * 256)\nadd_file('more', b'm' * 1000)");
  expect_refused(bundle.substr(0, bundle.size() / 2), Errc::invalid_argument, "bundle");
}

TEST_F(AppInstallerTest, UncompressedTarIsRefused) {
  crafted("plain", "add_file('data', b'x')");
  expect_refused(read_file(tmp_ / "plain.tar"), Errc::invalid_argument, "zstd");
}

TEST_F(AppInstallerTest, StreamErrorAtTheEndPassesThrough) {
  AppInstaller installer(target());
  install_first(installer);
  const Snapshot before = snapshot(app_dir_);
  // The tar is complete long before the stream ends; the check at the end must still decide.
  FailingStream stream(good_bundle("2.0.0"),
                       Error{Errc::digest_mismatch, "payloads/app.tar.zst: sha256 is abc, release says def"});
  auto r = installer.stage("2.0.0", stream);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::digest_mismatch);
  EXPECT_THAT(r.error().message, HasSubstr("payloads/app.tar.zst"));
  EXPECT_THAT(r.error().message, HasSubstr("stage app sensor-app version 2.0.0"));
  EXPECT_EQ(snapshot(app_dir_), before);
  EXPECT_FALSE(installer.is_staged("2.0.0"));
}

TEST_F(AppInstallerTest, StreamErrorMidwayPassesThrough) {
  AppInstaller installer(target());
  install_first(installer);
  const Snapshot before = snapshot(app_dir_);
  std::string bundle = crafted("mid", "add_file('data', bytes(range(256)) * 4096)");
  FailingStream stream(bundle, Error{Errc::too_large, "download is larger than the 1000 bytes the release allows"},
                       bundle.size() / 2);
  auto r = installer.stage("2.0.0", stream);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::too_large);
  EXPECT_THAT(r.error().message, HasSubstr("1000 bytes"));
  EXPECT_EQ(snapshot(app_dir_), before);
}

TEST_F(AppInstallerTest, DiscardRemovesStagedAndStagingFolders) {
  AppInstaller installer(target());
  install_first(installer);
  MemoryStream stream(good_bundle("2.0.0"));
  ASSERT_TRUE(installer.stage("2.0.0", stream));
  stdfs::create_directories(app_dir_ / "versions" / ".staging-3.0.0" / "half");
  ASSERT_TRUE(installer.discard("2.0.0"));
  ASSERT_TRUE(installer.discard("3.0.0"));
  ASSERT_TRUE(installer.discard("4.0.0"));  // nothing there: fine
  EXPECT_EQ(installer.versions(), std::vector<std::string>{"1.0.0"});
  EXPECT_FALSE(stdfs::exists(app_dir_ / "versions" / ".staging-3.0.0"));
  auto r = installer.discard("1.0.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::conflict);
  EXPECT_TRUE(installer.is_staged("1.0.0"));
}

TEST_F(AppInstallerTest, PruneKeepsCurrentPreviousAndTheKeepSet) {
  AppInstaller installer(target());
  const std::vector<std::string> all{"1", "2", "3", "4", "5"};
  for (std::size_t i = 0; i < all.size(); ++i) {
    MemoryStream stream(good_bundle("v" + all[i]));
    ASSERT_TRUE(installer.stage(all[i], stream));
    // Arrival order by mtime, as if staged a minute apart.
    stdfs::last_write_time(app_dir_ / "versions" / all[i],
                           stdfs::file_time_type::clock::now() - std::chrono::minutes(10 - static_cast<int>(i)));
  }
  ASSERT_TRUE(installer.activate("4"));  // 5 was staged later but never activated
  stdfs::create_directories(app_dir_ / "versions" / ".staging-6");

  // Two may stay: current 4 and the kept 1, although 1 is the oldest; 2, 3 and 5 go.
  ASSERT_TRUE(installer.prune({"1"}));
  EXPECT_EQ(installer.versions(), (std::vector<std::string>{"1", "4"}));
  EXPECT_FALSE(stdfs::exists(app_dir_ / "versions" / ".staging-6"));
  EXPECT_EQ(installer.current_version(), "4");
  ASSERT_TRUE(installer.prune({}));
  EXPECT_EQ(installer.versions(), (std::vector<std::string>{"1", "4"}));
}

TEST_F(AppInstallerTest, PruneAfterUpgradeKeepsCurrentAndPrevious) {
  AppInstaller installer(target());
  for (int i = 1; i <= 3; ++i) {
    const std::string v = "1." + std::to_string(i);
    MemoryStream stream(good_bundle(v));
    ASSERT_TRUE(installer.stage(v, stream));
    stdfs::last_write_time(app_dir_ / "versions" / v,
                           stdfs::file_time_type::clock::now() - std::chrono::minutes(10 - i));
    ASSERT_TRUE(installer.activate(v));
    ASSERT_TRUE(installer.prune({}));
  }
  EXPECT_EQ(installer.versions(), (std::vector<std::string>{"1.2", "1.3"}));
  EXPECT_EQ(installer.current_version(), "1.3");
}

// Unpacking onto a 1 MiB tmpfs in a private mount namespace (a forked child; the host's mounts
// are never touched). The child reports back through a pipe.
TEST_F(AppInstallerTest, FullDiskIsNoSpaceAndChangesNothing) {
  const std::string small = good_bundle("1.0.0");
  const std::string big = crafted("big", "add_file('ok.txt', b'ok')\nadd_file('bin/huge', bytes(4 << 20))");
  stdfs::create_directories(app_dir_);

  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto report = [&](const std::string& text) {
      (void)!::write(fds[1], text.data(), text.size());
      ::_exit(0);
    };
    if (::unshare(CLONE_NEWNS) != 0) report(std::string("SKIP unshare(CLONE_NEWNS): ") + std::strerror(errno));
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      report(std::string("SKIP make / private: ") + std::strerror(errno));
    if (::mount("tmpfs", app_dir_.c_str(), "tmpfs", 0, "size=1m,mode=0755") != 0)
      report(std::string("SKIP mount tmpfs: ") + std::strerror(errno));
    AppInstaller installer(target());
    MemoryStream first(small);
    if (!installer.stage("1.0.0", first) || !installer.activate("1.0.0")) report("FAIL first install");
    const Snapshot before = snapshot(app_dir_);
    MemoryStream second(big);
    auto r = installer.stage("2.0.0", second);
    if (r) report("FAIL staged 4 MiB onto a 1 MiB file system");
    const bool same = snapshot(app_dir_) == before && installer.current_version() == "1.0.0";
    report(std::string(errc_name(r.error().code)) + "\n" + (same ? "same" : "changed") + "\n" +
           r.error().message);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  if (out.starts_with("SKIP")) {
    std::fprintf(stderr, "\n*** FULL-DISK TEST NOT RUN: cannot mount a tmpfs in a private mount namespace: %s ***\n\n",
                 out.c_str());
    GTEST_SKIP() << "cannot mount a tmpfs in a private mount namespace: " << out;
  }
  ASSERT_FALSE(out.starts_with("FAIL")) << out;
  auto lines = out.find('\n');
  ASSERT_NE(lines, std::string::npos) << out;
  EXPECT_EQ(out.substr(0, lines), "no-space") << out;
  EXPECT_THAT(out, HasSubstr("\nsame\n"));
  EXPECT_THAT(out, HasSubstr("bin/huge"));  // which file
  EXPECT_THAT(out, HasSubstr("sensor-app"));
}

}  // namespace
}  // namespace eddy::ota
