#include "ota/git_source.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <sstream>

#include "tests/support/git_servers.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using namespace eddy::testing;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::map<std::string, std::string> git_env(std::optional<long> time = {}) {
  std::map<std::string, std::string> env = {{"GIT_CONFIG_NOSYSTEM", "1"},
                                            {"HOME", "/nonexistent"},
                                            {"GIT_AUTHOR_NAME", "Fleet Admin"},
                                            {"GIT_AUTHOR_EMAIL", "fleet@example.com"},
                                            {"GIT_COMMITTER_NAME", "Fleet Admin"},
                                            {"GIT_COMMITTER_EMAIL", "fleet@example.com"}};
  if (time) {
    env["GIT_AUTHOR_DATE"] = "@" + std::to_string(*time) + " +0000";
    env["GIT_COMMITTER_DATE"] = "@" + std::to_string(*time) + " +0000";
  }
  return env;
}

std::string git(const stdfs::path& dir, std::vector<std::string> args, std::optional<long> time = {}) {
  args.insert(args.begin(), {"git", "-C", dir.string()});
  return trim(run_ok(args, {}, git_env(time)));
}

// A signed commit with a fixed committer time, so history tests do not depend on the clock.
std::string commit_at(SignedRepo& repo, const std::string& message, long time) {
  git(repo.dir(), {"add", "-A"});
  git(repo.dir(), {"commit", "-q", "--allow-empty", "-S", "-m", message}, time);
  return repo.head();
}

std::size_t count_lines(const std::string& s) {
  std::istringstream in(s);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) ++n;
  return n;
}

class GitSourceTest : public ::testing::Test {
 protected:
  GitSourceTest()
      : key(make_ssh_key(tmp / "keys", "fleet")), upstream(tmp.path() / "served" / "fleet", key) {}

  Expected<GitSource> open_local(const std::string& url, const std::string& branch = "main") {
    return GitSource::open(tmp / "local.git", url, branch);
  }

  TempDir tmp;
  SshKey key;
  SignedRepo upstream;
};

// --- Transports: file://, git:// (git daemon) and smart HTTP (lighttpd + git http-backend) ---

class GitSourceTransportTest : public GitSourceTest, public ::testing::WithParamInterface<std::string> {
 protected:
  std::string serve() {
    const std::string& scheme = GetParam();
    if (scheme == "git") {
      daemon = std::make_unique<GitDaemonServer>(tmp / "served", tmp / "daemon");
      return daemon->url("fleet");
    }
    if (scheme == "http") {
      http = std::make_unique<GitHttpServer>(tmp / "served", tmp / "http");
      return http->url("fleet");
    }
    return upstream.url();
  }

  std::unique_ptr<GitDaemonServer> daemon;
  std::unique_ptr<GitHttpServer> http;
};

TEST_P(GitSourceTransportTest, FetchesOnlyWhatIsNewAndFollowsRewrittenHistory) {
  upstream.write("releases/app-1.yaml", "version: 1\n");
  upstream.write("README", "fleet\n");
  std::string first = upstream.commit("first release");
  std::string url = serve();

  auto source = open_local(url);
  ASSERT_TRUE(source) << source.error().message;
  auto tip = source->fetch();
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, first);
  EXPECT_EQ(git(tmp / "local.git", {"rev-parse", "refs/eddy/fetched"}), first);
  EXPECT_GT(source->last_fetch_stats().received_objects, 0u);
  EXPECT_GT(source->last_fetch_stats().received_bytes, 0u);

  // Nothing new: nothing received.
  tip = source->fetch();
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, first);
  EXPECT_EQ(source->last_fetch_stats().received_objects, 0u);

  ASSERT_TRUE(source->set_accepted(first));

  // One new commit: exactly its new objects (commit, changed trees, new blob).
  upstream.write("releases/app-2.yaml", "version: 2\n");
  std::string second = upstream.commit("second release");
  tip = source->fetch();
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, second);
  std::size_t new_objects = count_lines(git(upstream.dir(), {"rev-list", "--objects", first + ".." + second}));
  EXPECT_EQ(new_objects, 4u);  // commit, root tree, releases/ tree, app-2.yaml
  EXPECT_EQ(source->last_fetch_stats().received_objects, new_objects);
  auto descends = source->descends_from(second, first);
  ASSERT_TRUE(descends) << descends.error().message;
  EXPECT_TRUE(*descends);

  // Rewritten remote history (a force push): still fetched, and it does not descend from the
  // old tip, so the trust layer can refuse it. The accepted ref stays where it was.
  git(upstream.dir(), {"reset", "-q", "--hard", first});
  upstream.write("releases/app-2.yaml", "version: 2-rewritten\n");
  std::string rewritten = upstream.commit("rewritten second release");
  tip = source->fetch();
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, rewritten);
  descends = source->descends_from(rewritten, second);
  ASSERT_TRUE(descends) << descends.error().message;
  EXPECT_FALSE(*descends);
  EXPECT_TRUE(*source->descends_from(rewritten, first));
  EXPECT_EQ(git(tmp / "local.git", {"rev-parse", "refs/eddy/accepted"}), first);
  EXPECT_EQ(*source->read_file(rewritten, "releases/app-2.yaml", 1024), "version: 2-rewritten\n");
  // The old commit is still readable (the accepted ref and the database may name it).
  EXPECT_EQ(*source->read_file(second, "releases/app-2.yaml", 1024), "version: 2\n");
}

TEST_P(GitSourceTransportTest, MissingBranchIsNotFound) {
  upstream.commit("first");
  std::string url = serve();
  auto source = open_local(url, "production");
  ASSERT_TRUE(source) << source.error().message;
  auto tip = source->fetch();
  ASSERT_FALSE(tip);
  EXPECT_EQ(tip.error().code, Errc::not_found) << tip.error().message;
  EXPECT_NE(tip.error().message.find("production"), std::string::npos) << tip.error().message;
  EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
}

INSTANTIATE_TEST_SUITE_P(Transports, GitSourceTransportTest, ::testing::Values("file", "git", "http"),
                         [](const auto& param_info) { return param_info.param; });

// --- Reading commits, files and history ---

TEST_F(GitSourceTest, CommitRawIsTheObjectAsGitPrintsIt) {
  upstream.write("releases/a.yaml", "a\n");
  std::string id = commit_at(upstream, "Release a\n\nWith a body line.", 1700000000);
  auto source = open_local(upstream.url());
  ASSERT_TRUE(source) << source.error().message;
  ASSERT_TRUE(source->fetch());

  auto info = source->commit(id);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->id, id);
  EXPECT_EQ(info->time, 1700000000);
  EXPECT_EQ(info->summary, "Release a");
  EXPECT_EQ(info->raw, run_ok({"git", "-C", upstream.dir().string(), "cat-file", "commit", id}));
  EXPECT_NE(info->raw.find("\ngpgsig -----BEGIN SSH SIGNATURE-----"), std::string::npos);

  auto missing = source->commit(std::string(40, 'a'));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  auto bad = source->commit("main");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

TEST_F(GitSourceTest, ReadsAndListsFiles) {
  upstream.write("releases/b.yaml", "b\n");
  upstream.write("releases/a.yaml", "a\n");
  upstream.write("releases/nested/c.yaml", "c\n");
  upstream.write("payloads/big.bin", std::string(5000, 'x'));
  std::string id = upstream.commit("files");
  std::error_code ec;
  stdfs::create_symlink("a.yaml", upstream.dir() / "releases" / "link.yaml", ec);
  ASSERT_FALSE(ec);
  id = upstream.commit("symlink");
  auto source = open_local(upstream.url());
  ASSERT_TRUE(source) << source.error().message;
  ASSERT_TRUE(source->fetch());

  EXPECT_EQ(*source->read_file(id, "releases/a.yaml", 100), "a\n");
  EXPECT_EQ(*source->read_file(id, "releases/nested/c.yaml", 100), "c\n");
  EXPECT_EQ(source->read_file(id, "payloads/big.bin", 5000)->size(), 5000u);

  auto too_large = source->read_file(id, "payloads/big.bin", 4999);
  ASSERT_FALSE(too_large);
  EXPECT_EQ(too_large.error().code, Errc::too_large);
  EXPECT_NE(too_large.error().message.find("payloads/big.bin"), std::string::npos);

  auto missing = source->read_file(id, "releases/zzz.yaml", 100);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find("releases/zzz.yaml"), std::string::npos) << missing.error().message;
  EXPECT_NE(missing.error().message.find(id), std::string::npos) << missing.error().message;

  EXPECT_EQ(source->read_file(id, "releases", 100).error().code, Errc::invalid_argument);
  EXPECT_EQ(source->read_file(id, "releases/link.yaml", 100).error().code, Errc::invalid_argument);
  EXPECT_EQ(source->read_file(id, "/etc/passwd", 100).error().code, Errc::invalid_argument);

  auto files = source->list_files(id, "releases");
  ASSERT_TRUE(files) << files.error().message;
  EXPECT_EQ(*files, (std::vector<std::string>{"a.yaml", "b.yaml"}));  // no folders, no links
  EXPECT_EQ(*source->list_files(id, "releases/"), *files);
  EXPECT_EQ(*source->list_files(id, "releases/nested"), std::vector<std::string>{"c.yaml"});
  EXPECT_TRUE(source->list_files(id, "rollouts")->empty());
  EXPECT_TRUE(source->list_files(id, "")->empty());  // only folders at the top
  EXPECT_EQ(source->list_files(id, "payloads/big.bin").error().code, Errc::invalid_argument);
}

TEST_F(GitSourceTest, LastChangeTimeFollowsFirstParents) {
  upstream.write("releases/a.yaml", "a1\n");
  upstream.write("releases/b.yaml", "b1\n");
  commit_at(upstream, "add a and b", 1000);
  upstream.write("releases/a.yaml", "a2\n");
  commit_at(upstream, "change a", 2000);
  upstream.write("rollouts/r.yaml", "r\n");
  commit_at(upstream, "add a rollout", 3000);
  upstream.write("releases/a.yaml", "a2\n");  // rewritten with the same bytes: no change
  std::string main_tip = commit_at(upstream, "touch nothing", 4000);

  // A side branch changes b at 5000, merged into main at 6000: along main's first parents the
  // merge is the commit that changed b.
  git(upstream.dir(), {"checkout", "-q", "-b", "side", "HEAD~2"});
  upstream.write("releases/b.yaml", "b2\n");
  commit_at(upstream, "change b on a side branch", 5000);
  git(upstream.dir(), {"checkout", "-q", "main"});
  git(upstream.dir(), {"merge", "-q", "--no-ff", "--no-gpg-sign", "-m", "merge side", "side"}, 6000);
  std::string merged = upstream.head();

  auto source = open_local(upstream.url());
  ASSERT_TRUE(source) << source.error().message;
  ASSERT_TRUE(source->fetch());

  EXPECT_EQ(*source->last_change_time(main_tip, "releases/a.yaml"), 2000);
  EXPECT_EQ(*source->last_change_time(main_tip, "releases/b.yaml"), 1000);
  EXPECT_EQ(*source->last_change_time(main_tip, "releases"), 2000);
  EXPECT_EQ(*source->last_change_time(main_tip, "rollouts/r.yaml"), 3000);
  EXPECT_EQ(*source->last_change_time(merged, "releases/b.yaml"), 6000);
  EXPECT_EQ(*source->last_change_time(merged, "releases/a.yaml"), 2000);

  auto missing = source->last_change_time(main_tip, "releases/zzz.yaml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find("releases/zzz.yaml"), std::string::npos);
}

// --- The repository and its remote ---

TEST_F(GitSourceTest, ReopenKeepsObjectsAndUpdatesUrlAndBranch) {
  std::string first = upstream.commit("first");
  {
    auto source = open_local(upstream.url());
    ASSERT_TRUE(source) << source.error().message;
    EXPECT_EQ(*source->fetch(), first);
    ASSERT_TRUE(source->set_accepted(first));
  }
  // (Made after the first fetch: libgit2's file:// transport brings the objects of every
  // remote branch, not only the wanted one.)
  git(upstream.dir(), {"branch", "next"});
  git(upstream.dir(), {"checkout", "-q", "next"});
  std::string next = upstream.commit("on next");
  GitDaemonServer daemon(tmp / "served", tmp / "daemon");
  auto source = open_local(daemon.url("fleet"), "next");
  ASSERT_TRUE(source) << source.error().message;
  EXPECT_TRUE(source->commit(first)) << "objects survive a reopen";
  EXPECT_EQ(git(tmp / "local.git", {"config", "--get", "remote.origin.url"}), daemon.url("fleet"));
  EXPECT_EQ(git(tmp / "local.git", {"config", "--get-all", "remote.origin.fetch"}),
            "+refs/heads/next:refs/eddy/fetched");
  auto tip = source->fetch();
  ASSERT_TRUE(tip) << tip.error().message;
  EXPECT_EQ(*tip, next);
  EXPECT_EQ(source->last_fetch_stats().received_objects, 1u);  // the tree is the same; one commit
  EXPECT_EQ(git(tmp / "local.git", {"rev-parse", "refs/eddy/accepted"}), first);

  // A plain `git fetch` in the repository does what eddy does.
  EXPECT_EQ(git(tmp / "local.git", {"fetch", "-q", "origin"}), "");
}

TEST_F(GitSourceTest, MovedSourceKeepsWorking) {
  std::string first = upstream.commit("first");
  auto a = open_local(upstream.url());
  ASSERT_TRUE(a);
  GitSource b = std::move(*a);
  EXPECT_EQ(*b.fetch(), first);
  GitSource c = std::move(b);
  EXPECT_EQ(c.commit(first)->id, first);
}

TEST_F(GitSourceTest, RefusesBadArgumentsAndForeignFolders) {
  EXPECT_EQ(GitSource::open(tmp / "r1", "ftp://example.com/x", "main").error().code, Errc::invalid_argument);
  EXPECT_EQ(GitSource::open(tmp / "r1", "", "main").error().code, Errc::invalid_argument);
  EXPECT_EQ(GitSource::open(tmp / "r1", upstream.url(), "bad..branch").error().code, Errc::invalid_argument);
  EXPECT_EQ(GitSource::open(tmp / "r1", upstream.url(), "").error().code, Errc::invalid_argument);
  EXPECT_FALSE(stdfs::exists(tmp / "r1"));

  write_file(tmp / "not-a-repo" / "precious.txt", "keep me");
  auto foreign = GitSource::open(tmp / "not-a-repo", upstream.url(), "main");
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, Errc::invalid_argument);
  EXPECT_NE(foreign.error().message.find("not-a-repo"), std::string::npos);
  EXPECT_EQ(read_file(tmp / "not-a-repo" / "precious.txt"), "keep me");

  // An empty folder (a fresh data_dir mount, say) is fine, and a leftover staging folder of an
  // interrupted creation is cleared.
  stdfs::create_directories(tmp / "empty");
  write_file(tmp / "empty.init" / "junk", "x");
  auto made = GitSource::open(tmp / "empty", upstream.url(), "main");
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_FALSE(stdfs::exists(tmp / "empty.init"));
  EXPECT_EQ(git(tmp / "empty", {"rev-parse", "--is-bare-repository"}), "true");
}

TEST_F(GitSourceTest, SetAcceptedNeedsAKnownCommit) {
  std::string first = upstream.commit("first");
  auto source = open_local(upstream.url());
  ASSERT_TRUE(source);
  ASSERT_TRUE(source->fetch());
  ASSERT_TRUE(source->set_accepted(first));
  EXPECT_EQ(git(tmp / "local.git", {"rev-parse", "refs/eddy/accepted"}), first);
  auto unknown = source->set_accepted(std::string(40, 'b'));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Errc::not_found);
  EXPECT_EQ(git(tmp / "local.git", {"rev-parse", "refs/eddy/accepted"}), first);
}

// --- Network errors and deadlines ---

TEST_F(GitSourceTest, ClosedPortIsANetworkErrorNamingTheUrl) {
  upstream.commit("first");
  for (std::string scheme : {"git", "http"}) {
    std::string url = scheme + "://127.0.0.1:" + std::to_string(free_port()) + "/fleet";
    auto source = GitSource::open(tmp / ("closed-" + scheme), url, "main");
    ASSERT_TRUE(source) << source.error().message;
    auto tip = source->fetch(std::chrono::seconds(20));
    ASSERT_FALSE(tip) << scheme;
    EXPECT_EQ(tip.error().code, Errc::network) << tip.error().message;
    EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
  }
}

TEST_F(GitSourceTest, HttpErrorsAndMissingRepositoriesAreNetworkErrors) {
  upstream.commit("first");
  GitHttpServer http(tmp / "served", tmp / "http");
  auto source = GitSource::open(tmp / "local.git", http.url("no-such-repo"), "main");
  ASSERT_TRUE(source);
  auto tip = source->fetch();
  ASSERT_FALSE(tip);
  EXPECT_EQ(tip.error().code, Errc::network) << tip.error().message;
  EXPECT_NE(tip.error().message.find(http.url("no-such-repo")), std::string::npos) << tip.error().message;

  auto local = GitSource::open(tmp / "local2.git", "file://" + (tmp / "nothing-here").string(), "main");
  ASSERT_TRUE(local);
  tip = local->fetch();
  ASSERT_FALSE(tip);
  EXPECT_EQ(tip.error().code, Errc::network) << tip.error().message;
}

TEST_F(GitSourceTest, SilentServerTimesOut) {
  SilentListener silent;
  for (std::string scheme : {"git", "http"}) {
    std::string url = scheme + "://127.0.0.1:" + std::to_string(silent.port()) + "/fleet";
    auto source = GitSource::open(tmp / ("silent-" + scheme), url, "main");
    ASSERT_TRUE(source) << source.error().message;
    auto tip = source->fetch(std::chrono::seconds(1));
    ASSERT_FALSE(tip) << scheme;
    EXPECT_EQ(tip.error().code, Errc::timeout) << tip.error().message;
    EXPECT_NE(tip.error().message.find(url), std::string::npos) << tip.error().message;
  }
}

TEST_F(GitSourceTest, PassedDeadlineStopsAFetchAndMovesNoRef) {
  upstream.write("releases/a.yaml", "a\n");
  upstream.commit("first");
  GitDaemonServer daemon(tmp / "served", tmp / "daemon");
  auto source = open_local(daemon.url("fleet"));
  ASSERT_TRUE(source);
  auto tip = source->fetch(std::chrono::seconds(0));
  ASSERT_FALSE(tip);
  EXPECT_EQ(tip.error().code, Errc::timeout) << tip.error().message;
  EXPECT_NE(run({"git", "-C", (tmp / "local.git").string(), "rev-parse", "--verify", "-q", "refs/eddy/fetched"})
                .exit_code,
            0);
}

}  // namespace
}  // namespace eddy::ota
