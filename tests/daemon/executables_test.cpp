// eddyd stays small by leaving the update engine's libraries to its update worker (all but
// mbedTLS, which comes with its hub client): checked on the built executables with readelf, as the
// packages' dependencies are computed.
#include <gtest/gtest.h>

#include "tests/support/support.hpp"

namespace eddy::testing {
namespace {

std::vector<std::string> needed(const stdfs::path& executable) {
  auto out = run_ok({"readelf", "-d", executable.string()});
  std::vector<std::string> libraries;
  for (std::size_t at = out.find("(NEEDED)"); at != std::string::npos; at = out.find("(NEEDED)", at + 1)) {
    auto open = out.find('[', at);
    auto close = out.find(']', open);
    libraries.push_back(out.substr(open + 1, close - open - 1));
  }
  return libraries;
}

bool needs(const std::vector<std::string>& libraries, const std::string& prefix) {
  return std::any_of(libraries.begin(), libraries.end(), [&](const auto& l) { return l.starts_with(prefix); });
}

TEST(ExecutablesTest, EddydLinksNoUpdateEngineLibrary) {
  auto eddyd = needed(eddyd_path());
  ASSERT_FALSE(eddyd.empty());
  for (const char* library : {"libgit2", "libarchive", "libsodium", "libzstd", "libssh2", "libcrypto", "libxml2"})
    EXPECT_FALSE(needs(eddyd, library)) << "eddyd needs " << library;
  EXPECT_TRUE(needs(eddyd, "libsqlite3")) << "status and history come from the state store";
  // mbedTLS is let in deliberately: it comes with the HTTP client of eddyd's own hub sync
  // (daemon/agent.hpp), which resumes the update worker's TLS session with an https:// hub;
  // VmRSS stays under 8 MiB with it (bench/RESULTS.md, issue 2).

#if EDDY_EDDYD_STATIC_CXX
  // The C++ runtime and yaml-cpp are linked in (daemon/CMakeLists.txt, EDDY_EDDYD_STATIC_CXX):
  // the shared ones would cost eddyd 2 MiB of resident pages.
  for (const char* library : {"libstdc++", "libyaml-cpp", "libgcc_s"})
    EXPECT_FALSE(needs(eddyd, library)) << "eddyd needs " << library << " (built with EDDY_EDDYD_STATIC_CXX)";
#endif

  auto worker = needed(eddyd_worker_path());
  for (const char* library : {"libgit2", "libarchive", "libsodium", "libsqlite3"})
    EXPECT_TRUE(needs(worker, library)) << "eddyd-worker does not need " << library;
}

}  // namespace
}  // namespace eddy::testing
