#include "ota/trust.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <sstream>

#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

namespace t = eddy::testing;

std::map<std::string, std::string> git_env() {
  return {{"GIT_CONFIG_NOSYSTEM", "1"},          {"HOME", "/nonexistent"},
          {"GIT_AUTHOR_NAME", "Fleet Admin"},    {"GIT_AUTHOR_EMAIL", "fleet@example.com"},
          {"GIT_COMMITTER_NAME", "Fleet Admin"}, {"GIT_COMMITTER_EMAIL", "fleet@example.com"}};
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Keys and one repository shared by all tests of this file (RSA key generation is slow).
class TrustTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new t::TempDir();
    ed_ = new t::SshKey(t::make_ssh_key(*dir_ / "keys", "ed", "ed25519"));
    ec_ = new t::SshKey(t::make_ssh_key(*dir_ / "keys", "ec", "ecdsa"));
    rsa_ = new t::SshKey(t::make_ssh_key(*dir_ / "keys", "rsa", "rsa"));
    stranger_ = new t::SshKey(t::make_ssh_key(*dir_ / "keys", "stranger", "ed25519"));
    repo_ = new t::SignedRepo(*dir_ / "repo", *ed_);
  }
  static void TearDownTestSuite() {
    delete repo_;
    delete stranger_;
    delete rsa_;
    delete ec_;
    delete ed_;
    delete dir_;
  }

  static t::SignedRepo& repo() { return *repo_; }

  static std::string raw(const std::string& id) {
    return t::run_ok({"git", "cat-file", "commit", id}, repo_->dir(), git_env());
  }

  // Write a commit object as given (it need not be what git would sign) and return its id.
  static std::string write_commit(const std::string& raw_commit) {
    auto file = *dir_ / "object.tmp";
    t::write_file(file, raw_commit);
    return trim(t::run_ok({"git", "hash-object", "-t", "commit", "-w", "--literally", file.string()}, repo_->dir(),
                          git_env()));
  }

  // Sign the payload of an unsigned commit with ssh-keygen directly (any namespace, hash or
  // key file) and splice the signature in as a gpgsig header, as git would.
  static std::string resign(const std::string& unsigned_id, const std::string& key_file, const std::string& name_space,
                            const std::vector<std::string>& extra = {}) {
    std::string payload = raw(unsigned_id);
    auto payload_file = *dir_ / "payload.tmp";
    t::write_file(payload_file, payload);
    std::filesystem::remove(payload_file.string() + ".sig");
    std::vector<std::string> argv = {"ssh-keygen", "-q", "-Y", "sign", "-f", key_file, "-n", name_space};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(payload_file.string());
    t::run_ok(argv);
    return splice_signature(payload, t::read_file(payload_file.string() + ".sig"));
  }

  static std::string splice_signature(const std::string& payload, const std::string& signature) {
    std::string header = "gpgsig ";
    std::istringstream lines(signature);
    std::string line;
    bool first = true;
    while (std::getline(lines, line)) {
      header += (first ? "" : " ") + line + "\n";
      first = false;
    }
    auto end_of_headers = payload.find("\n\n");
    return write_commit(payload.substr(0, end_of_headers + 1) + header + payload.substr(end_of_headers + 1));
  }

  // Git's verdict: `git verify-commit` with gpg.format=ssh and this allowed-signers file.
  static bool git_accepts(const std::string& id, const std::filesystem::path& allowed) {
    auto r = t::run({"git", "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile=" + allowed.string(),
                     "verify-commit", id},
                    repo_->dir(), git_env());
    return r.exit_code == 0;
  }

  static std::string line(const std::string& principals, const t::SshKey& key, const std::string& options = "") {
    return principals + " " + (options.empty() ? "" : options + " ") + key.public_line + "\n";
  }

  static t::TempDir* dir_;
  static t::SshKey* ed_;
  static t::SshKey* ec_;
  static t::SshKey* rsa_;
  static t::SshKey* stranger_;
  static t::SignedRepo* repo_;
};

t::TempDir* TrustTest::dir_ = nullptr;
t::SshKey* TrustTest::ed_ = nullptr;
t::SshKey* TrustTest::ec_ = nullptr;
t::SshKey* TrustTest::rsa_ = nullptr;
t::SshKey* TrustTest::stranger_ = nullptr;
t::SignedRepo* TrustTest::repo_ = nullptr;

struct Case {
  std::string name;
  std::string commit;           // commit id in the shared repository
  std::string allowed_signers;  // file content
  std::optional<Errc> refused;  // nullopt: accepted
  std::string principal = {};   // expected principal when accepted (if not empty)
};

TEST_F(TrustTest, AgreesWithGitVerifyCommit) {
  auto& r = repo();
  r.write("releases/app.yaml", "kind: Release\n");
  const std::string ed_commit = r.commit("ed25519 signed");
  const std::string ec_commit = r.commit_with_key("ecdsa signed", *ec_);
  const std::string rsa_commit = r.commit_with_key("rsa signed", *rsa_);
  const std::string stranger_commit = r.commit_with_key("signed by a stranger", *stranger_);
  const std::string unsigned_commit = r.commit("not signed", false);

  // Tampered commits keep the gpgsig header of a good one.
  std::string good_raw = raw(ed_commit);
  std::string msg_tampered = good_raw;
  msg_tampered.replace(msg_tampered.rfind("ed25519 signed"), 14, "ed25519 s1gned");
  const std::string tampered_message = write_commit(msg_tampered);
  std::string tree_tampered = good_raw;
  tree_tampered.replace(5, 40, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
  ASSERT_NE(tree_tampered, good_raw);
  const std::string tampered_tree = write_commit(tree_tampered);

  // Signatures made outside git over the same payload.
  const std::string wrong_namespace = resign(unsigned_commit, ed_->private_key.string(), "file");
  const std::string sha256_hash = resign(unsigned_commit, ed_->private_key.string(), "git", {"-Ohashalg=sha256"});
  const std::string rsa_sha256 = resign(unsigned_commit, rsa_->private_key.string(), "git", {"-Ohashalg=sha256"});
  auto p384 = *dir_ / "keys" / "p384";
  if (!std::filesystem::exists(p384))
    t::run_ok({"ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "p384", "-f", p384.string()});
  auto p521 = *dir_ / "keys" / "p521";
  if (!std::filesystem::exists(p521))
    t::run_ok({"ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-N", "", "-C", "p521", "-f", p521.string()});
  t::SshKey p384_key{p384, trim(t::read_file(p384.string() + ".pub"))};
  t::SshKey p521_key{p521, trim(t::read_file(p521.string() + ".pub"))};
  const std::string p384_commit = resign(unsigned_commit, p384.string(), "git");
  const std::string p521_commit = resign(unsigned_commit, p521.string(), "git");
  // A commit carrying an OpenPGP signature block.
  const std::string pgp_commit = splice_signature(raw(unsigned_commit),
                                                  "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n=abcd\n"
                                                  "-----END PGP SIGNATURE-----\n");
  // Same gpgsig bytes, but a garbled base64 body.
  std::string garbled = good_raw;
  auto body = garbled.find(" U1NIU0lH");
  ASSERT_NE(body, std::string::npos);
  garbled.replace(body + 1, 8, "U1NIU0lI");
  const std::string bad_magic = write_commit(garbled);

  // OpenSSH certificates, signed by an ed25519 CA and an RSA CA.
  auto keys = *dir_ / "keys";
  t::SshKey ca = t::make_ssh_key(keys / "cas", "ca", "ed25519");
  t::SshKey rsa_ca = t::make_ssh_key(keys / "cas", "rsa-ca", "rsa");
  auto cert_commit = [&](const std::string& name, const std::string& type, const t::SshKey& by,
                         const std::vector<std::string>& options) {
    auto key = t::make_ssh_key(keys / "certs", name, type);
    std::vector<std::string> argv = {"ssh-keygen", "-q", "-s", by.private_key.string(), "-I", name + "-id"};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back(key.private_key.string() + ".pub");
    t::run_ok(argv);
    return std::pair{key, resign(unsigned_commit, key.private_key.string() + "-cert.pub", "git")};
  };
  const auto [cert_key, cert_good] = cert_commit("c-good", "ed25519", ca, {"-n", "fleet@example.com"});
  const auto cert_two = cert_commit("c-two", "ed25519", ca, {"-n", "ops@example.org,fleet@example.com"}).second;
  const auto cert_other = cert_commit("c-other", "ed25519", ca, {"-n", "other@example.org"}).second;
  const auto cert_expired =
      cert_commit("c-expired", "ed25519", ca, {"-n", "fleet@example.com", "-V", "20000101:20010101"}).second;
  const auto cert_host = cert_commit("c-host", "ed25519", ca, {"-h", "-n", "fleet@example.com"}).second;
  const auto cert_no_principals = cert_commit("c-none", "ed25519", ca, {}).second;
  const auto cert_rsa_ca = cert_commit("c-ecdsa", "ecdsa", rsa_ca, {"-n", "fleet@example.com"}).second;
  const std::string ca_line = line("*@example.com", ca, "cert-authority");

  const std::string ed = line("fleet@example.com", *ed_);
  const std::vector<Case> cases = {
      {"certificate, CA listed", cert_good, ca_line, std::nullopt, "fleet@example.com"},
      {"certificate, entry pattern selects one of two principals", cert_two,
       line("fleet@example.com", ca, "cert-authority"), std::nullopt, "fleet@example.com"},
      {"certificate by an RSA CA for an ecdsa key", cert_rsa_ca, line("*", rsa_ca, "cert-authority"), std::nullopt,
       "fleet@example.com"},
      {"certificate principal not in the entry", cert_other, ca_line, Errc::key_not_allowed},
      {"expired certificate", cert_expired, ca_line, Errc::key_not_allowed},
      {"host certificate", cert_host, ca_line, Errc::key_not_allowed},
      {"certificate without principals", cert_no_principals, ca_line, Errc::key_not_allowed},
      {"certificate, CA entry namespaces=file", cert_good, line("*@example.com", ca, "cert-authority,namespaces=\"file\""),
       Errc::key_not_allowed},
      {"certificate, only its plain key listed", cert_good, line("fleet@example.com", cert_key), Errc::unknown_key},
      {"certificate, CA listed without cert-authority", cert_good, line("*@example.com", ca), Errc::unknown_key},
      {"certificate, other CA listed", cert_good, line("*@example.com", rsa_ca, "cert-authority"),
       Errc::unknown_key},
      {"ed25519 good", ed_commit, ed, std::nullopt, "fleet@example.com"},
      {"ecdsa p256 good", ec_commit, line("ec@example.com", *ec_), std::nullopt, "ec@example.com"},
      {"rsa good (rsa-sha2-512)", rsa_commit, line("rsa@example.com", *rsa_), std::nullopt},
      {"rsa-sha2-256 over sha256", rsa_sha256, line("rsa@example.com", *rsa_), std::nullopt},
      {"ecdsa p384", p384_commit, line("p@example.com", p384_key), std::nullopt},
      {"ecdsa p521", p521_commit, line("p@example.com", p521_key), std::nullopt},
      {"sshsig hash sha256", sha256_hash, ed, std::nullopt},
      {"unsigned", unsigned_commit, ed, Errc::unsigned_commit},
      {"key not in file", stranger_commit, ed, Errc::unknown_key},
      {"ecdsa key, file lists ed25519 only", ec_commit, ed, Errc::unknown_key},
      {"tampered message", tampered_message, ed, Errc::bad_signature},
      {"tampered tree", tampered_tree, ed, Errc::bad_signature},
      {"garbled signature", bad_magic, ed, Errc::bad_signature},
      {"signature namespace file", wrong_namespace, ed, Errc::bad_signature},
      {"openpgp signature", pgp_commit, ed, Errc::unsupported},
      {"namespaces=git", ed_commit, line("fleet@example.com", *ed_, "namespaces=\"git\""), std::nullopt},
      {"namespaces=file,git", ed_commit, line("fleet@example.com", *ed_, "namespaces=\"file,git\""), std::nullopt},
      {"namespaces=g*", ed_commit, line("fleet@example.com", *ed_, "namespaces=\"g*\""), std::nullopt},
      {"namespaces=file", ed_commit, line("fleet@example.com", *ed_, "namespaces=\"file\""), Errc::key_not_allowed},
      {"namespaces=!git,*", ed_commit, line("fleet@example.com", *ed_, "namespaces=\"!git,*\""),
       Errc::key_not_allowed},
      {"valid-before in the past", ed_commit, line("fleet@example.com", *ed_, "valid-before=\"20200101\""),
       Errc::key_not_allowed},
      {"valid-after in the future", ed_commit, line("fleet@example.com", *ed_, "valid-after=\"20990101\""),
       Errc::key_not_allowed},
      {"valid-after in the past", ed_commit, line("fleet@example.com", *ed_, "valid-after=\"20200101\""),
       std::nullopt},
      {"validity window around now (UTC)", ed_commit,
       line("fleet@example.com", *ed_, "valid-after=\"20200101000000Z\",valid-before=\"20990101Z\""), std::nullopt},
      {"all options", ed_commit,
       line("fleet@example.com", *ed_, "namespaces=\"git\",valid-after=\"20200101\",valid-before=\"20990101\""),
       std::nullopt},
      {"principal pattern", ed_commit, line("*@example.com", *ed_), std::nullopt, "*@example.com"},
      {"comma-separated principals", ed_commit, line("alice@example.org,fleet@example.com", *ed_), std::nullopt,
       "alice@example.org"},
      {"quoted principal", ed_commit, "\"fleet admin@example.com\" " + ed_->public_line + "\n", std::nullopt,
       "fleet admin@example.com"},
      {"negated principal (ssh-keygen's literal semantics)", ed_commit,
       line("!fleet@example.com,*@example.com", *ed_), std::nullopt},
      {"several keys, comments and blank lines", rsa_commit,
       "# fleet signers\n\n" + line("ec@example.com", *ec_) + "   # indented comment\n" + ed + "\n" +
           line("rsa@example.com", *rsa_),
       std::nullopt, "rsa@example.com"},
      {"expired line, then a valid line for the same key", ed_commit,
       line("old@example.com", *ed_, "valid-before=\"20200101\"") + line("new@example.com", *ed_), std::nullopt,
       "new@example.com"},
      // find-principals picks the first line with the key; verify -I then only looks at
      // lines whose principals match that one, so the second line does not rescue it.
      {"first line namespaces=file shadows a later good line", ed_commit,
       line("a@example.com", *ed_, "namespaces=\"file\"") + line("b@example.com", *ed_), Errc::key_not_allowed},
      {"good line before a namespaces=file line", ed_commit,
       line("b@example.com", *ed_) + line("a@example.com", *ed_, "namespaces=\"file\""), std::nullopt},
      {"key listed only as cert-authority", ed_commit, line("*@example.com", *ed_, "cert-authority"),
       Errc::unknown_key},
      {"empty file", ed_commit, "# nobody\n", Errc::unknown_key},
  };

  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto file = *dir_ / ("allowed_signers." + std::to_string(n++));
    t::write_file(file, c.allowed_signers);
    const bool git = git_accepts(c.commit, file);
    auto signers = AllowedSigners::load(file);
    ASSERT_TRUE(signers) << signers.error().message;
    auto result = verify_commit(raw(c.commit), *signers, c.commit);
    EXPECT_EQ(git, result.has_value()) << "git " << (git ? "accepts" : "refuses") << ", Eddy "
                                       << (result ? "accepts" : "refuses: " + result.error().message);
    EXPECT_EQ(git, !c.refused.has_value()) << "the case's expectation disagrees with git";
    if (c.refused) {
      ASSERT_FALSE(result);
      EXPECT_EQ(result.error().code, *c.refused) << result.error().message;
      EXPECT_NE(result.error().message.find("commit " + c.commit.substr(0, 7)), std::string::npos)
          << result.error().message;
    } else if (result && !c.principal.empty()) {
      EXPECT_EQ(result->principal, c.principal);
    }
  }
}

TEST_F(TrustTest, IdentityNamesKeyTypeAndFingerprintAsSshKeygenDoes) {
  auto id = repo().commit_with_key("for identity", *ec_);
  auto signers = AllowedSigners::parse(line("ec@example.com", *ec_) + line("fleet@example.com", *ed_), "mem");
  ASSERT_TRUE(signers) << signers.error().message;
  EXPECT_EQ(signers->size(), 2u);
  auto who = verify_commit(raw(id), *signers, id);
  ASSERT_TRUE(who) << who.error().message;
  EXPECT_EQ(who->principal, "ec@example.com");
  EXPECT_EQ(who->key_type, "ecdsa-sha2-nistp256");
  // `ssh-keygen -l`: "256 SHA256:... comment (ECDSA)"
  auto listed = t::run_ok({"ssh-keygen", "-l", "-f", ec_->private_key.string() + ".pub"});
  auto fp = listed.substr(listed.find(' ') + 1);
  fp = fp.substr(0, fp.find(' '));
  EXPECT_EQ(who->fingerprint, fp);
}

TEST_F(TrustTest, RefusalMessagesSayWhatAndWhatToDo) {
  auto ed = line("fleet@example.com", *ed_);
  auto unsigned_id = repo().commit("plain", false);
  auto signers = AllowedSigners::parse(ed, "/etc/eddy/allowed_signers");
  ASSERT_TRUE(signers);
  auto r = verify_commit(raw(unsigned_id), *signers, unsigned_id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "commit " + unsigned_id.substr(0, 7) +
                                   ": not signed; sign fleet commits with `git commit -S` (gpg.format=ssh)");

  auto stranger_id = repo().commit_with_key("stranger", *stranger_);
  r = verify_commit(raw(stranger_id), *signers, stranger_id);
  ASSERT_FALSE(r);
  auto listed = t::run_ok({"ssh-keygen", "-l", "-f", stranger_->private_key.string() + ".pub"});
  auto fp = listed.substr(listed.find(' ') + 1);
  fp = fp.substr(0, fp.find(' '));
  EXPECT_NE(r.error().message.find(fp), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("/etc/eddy/allowed_signers"), std::string::npos) << r.error().message;

  auto good_id = repo().commit("good");
  auto expired = AllowedSigners::parse(line("fleet@example.com", *ed_, "valid-before=\"20200101Z\""), "as");
  ASSERT_TRUE(expired);
  r = verify_commit(raw(good_id), *expired, good_id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::key_not_allowed);
  EXPECT_NE(r.error().message.find("valid-before=2020-01-01 00:00:00 UTC"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("as:1"), std::string::npos) << r.error().message;

  auto not_yet = AllowedSigners::parse(line("fleet@example.com", *ed_, "valid-after=\"20990101Z\""), "as");
  ASSERT_TRUE(not_yet);
  r = verify_commit(raw(good_id), *not_yet, good_id);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("valid-after="), std::string::npos) << r.error().message;

  auto file_only = AllowedSigners::parse(line("fleet@example.com", *ed_, "namespaces=\"file\""), "as");
  ASSERT_TRUE(file_only);
  r = verify_commit(raw(good_id), *file_only, good_id);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("namespaces=\"file\""), std::string::npos) << r.error().message;
}

TEST_F(TrustTest, CommitTimeNotTodayDecidesValidity) {
  // A commit made in 2021 verifies against a key valid until 2022, as git passes the
  // committer time (not the current time) to ssh-keygen.
  auto env = git_env();
  env["GIT_COMMITTER_DATE"] = "2021-06-01T12:00:00Z";
  env["GIT_AUTHOR_DATE"] = "2021-06-01T12:00:00Z";
  t::run_ok({"git", "commit", "-q", "--allow-empty", "-S", "-m", "old"}, repo().dir(), env);
  auto id = repo().head();
  auto file = *dir_ / "allowed_signers.old";
  for (auto [options, accepted] : std::vector<std::pair<std::string, bool>>{
           {"valid-before=\"20220101\"", true},
           {"valid-after=\"20210601120001Z\"", false},
           {"valid-after=\"20210601120000Z\"", true},
           {"valid-before=\"20210601115959Z\"", false},
           {"valid-before=\"20210601120000Z\"", true}}) {
    SCOPED_TRACE(options);
    t::write_file(file, line("fleet@example.com", *ed_, options));
    EXPECT_EQ(git_accepts(id, file), accepted);
    auto signers = AllowedSigners::load(file);
    ASSERT_TRUE(signers) << signers.error().message;
    auto r = verify_commit(raw(id), *signers, id);
    EXPECT_EQ(r.has_value(), accepted) << (r ? "" : r.error().message);
    if (!accepted && !r) {
      EXPECT_EQ(r.error().code, Errc::key_not_allowed);
    }
  }
}

TEST_F(TrustTest, SignedPayloadIsWhatSshKeygenVerifies) {
  auto id = repo().commit("payload check\n\nwith a body\n");
  auto raw_commit = raw(id);
  auto split = split_signed_commit(raw_commit);
  ASSERT_TRUE(split.signature.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
  ASSERT_TRUE(split.signature.ends_with("-----END SSH SIGNATURE-----\n"));
  EXPECT_EQ(split.payload.find("gpgsig"), std::string::npos);
  EXPECT_TRUE(split.payload.ends_with("\n\npayload check\n\nwith a body\n"));
  // ssh-keygen itself confirms the payload and signature are exactly what git signed.
  auto sig_file = *dir_ / "split.sig";
  auto payload_file = *dir_ / "split.payload";
  auto allowed = *dir_ / "split.allowed";
  t::write_file(sig_file, split.signature);
  t::write_file(payload_file, split.payload);
  t::write_file(allowed, line("fleet@example.com", *ed_));
  auto r = t::sh("ssh-keygen -Y verify -f '" + allowed.string() + "' -I fleet@example.com -n git -s '" +
                 sig_file.string() + "' < '" + payload_file.string() + "'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(SplitSignedCommit, RemovesGpgsigHeadersExactlyAsGit) {
  const std::string raw =
      "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
      "author A <a@x> 1700000000 +0000\n"
      "committer A <a@x> 1700000000 +0000\n"
      "gpgsig -----BEGIN SSH SIGNATURE-----\n"
      " U1NIU0lH\n"
      " \n"
      " -----END SSH SIGNATURE-----\n"
      "gpgsig-sha256 -----BEGIN SSH SIGNATURE-----\n"
      " b3RoZXI=\n"
      " -----END SSH SIGNATURE-----\n"
      "encoding UTF-8\n"
      "\n"
      "subject\n"
      "gpgsig not a header in the message\n"
      " indented message line\n";
  auto split = split_signed_commit(raw);
  EXPECT_EQ(split.signature, "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n\n-----END SSH SIGNATURE-----\n");
  EXPECT_EQ(split.payload,
            "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
            "author A <a@x> 1700000000 +0000\n"
            "committer A <a@x> 1700000000 +0000\n"
            "encoding UTF-8\n"
            "\n"
            "subject\n"
            "gpgsig not a header in the message\n"
            " indented message line\n");

  auto unsigned_split = split_signed_commit("tree 1\ncommitter A <a@x> 1 +0000\n\nmsg\n");
  EXPECT_TRUE(unsigned_split.signature.empty());
  EXPECT_EQ(unsigned_split.payload, "tree 1\ncommitter A <a@x> 1 +0000\n\nmsg\n");
}

TEST_F(TrustTest, MalformedAllowedSignersNameFileLineAndProblem) {
  const std::string good = line("fleet@example.com", *ed_);
  const std::string key_data = ed_->public_line.substr(ed_->public_line.find(' ') + 1);
  struct Bad {
    std::string text;
    std::string expect;  // substring of the message after "origin:line: "
    int line;
  };
  const std::vector<Bad> bad = {
      {"a@x ssh-ed25519 AAAA$$$$not-base64", "not valid base64", 1},
      {"# c\n\n" + good + "a@x foo=\"1\" " + ed_->public_line, "unknown option `foo`", 4},
      {"a@x", "missing key", 1},
      {good + "a@x namespaces=\"git\"", "missing key", 2},
      {"a@x ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "unknown key type `ssh-foo`", 1},
      {"a@x namespaces=git " + ed_->public_line, "missing start quote", 1},
      {"a@x namespaces=\"git " + ed_->public_line, "unterminated quote", 1},
      {"a@x valid-after=\"2020\" " + ed_->public_line, "invalid \"valid-after\" time", 1},
      {"a@x valid-after=\"20300101\",valid-before=\"20200101\" " + ed_->public_line,
       "\"valid-before\" time is before \"valid-after\"", 1},
      {"a@x namespaces=\"git\",namespaces=\"file\" " + ed_->public_line, "multiple \"namespaces\" clauses", 1},
      {"a@x namespaces=\"git\", " + ed_->public_line, "unexpected end of options", 1},
      {"a@x ssh-rsa " + key_data, "does not match the key data", 1},
      {"a@x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==", "malformed ssh-ed25519 key", 1},
      {"\"a@x " + ed_->public_line, "unterminated quote in principals", 1},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.text);
    auto r = AllowedSigners::parse(b.text, "/etc/eddy/allowed_signers");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    const std::string prefix = "/etc/eddy/allowed_signers:" + std::to_string(b.line) + ": ";
    EXPECT_TRUE(r.error().message.starts_with(prefix)) << r.error().message;
    EXPECT_NE(r.error().message.find(b.expect), std::string::npos) << r.error().message;
  }
}

TEST_F(TrustTest, ParsesEveryOptionAndKnownKeyTypes) {
  // OpenSSH key types Eddy parses but does not verify (here DSA) are valid lines; a truncated
  // key blob is not.
  auto r = AllowedSigners::parse("d@x ssh-dss AAAAB3NzaC1kc3MAAACBAP1 comment\n", "mem");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("mem:1: invalid ssh-dss key"), std::string::npos) << r.error().message;

  auto text = "# comment\r\n\r\n" + line("a@x,b@y", *ed_, "cert-authority,NAMESPACES=\"git,file\"") +
              line("c@z", *rsa_, "valid-after=\"20200101\",valid-before=\"20990101Z\"");
  r = AllowedSigners::parse(text, "mem");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  const auto& a = r->entries()[0];
  EXPECT_EQ(a.line, 3u);
  EXPECT_EQ(a.principals, "a@x,b@y");
  EXPECT_TRUE(a.cert_authority);
  EXPECT_EQ(a.namespaces, "git,file");
  EXPECT_EQ(a.key.type, "ssh-ed25519");
  const auto& c = r->entries()[1];
  EXPECT_FALSE(c.cert_authority);
  EXPECT_EQ(c.valid_before, 4070908800);
  EXPECT_TRUE(c.valid_after.has_value());
  EXPECT_EQ(c.key.type, "ssh-rsa");
}

// A deviation from git, on purpose: DSA keys (deprecated by OpenSSH, gone from its default
// build since 9.8) parse, but Eddy does not verify their signatures and says so.
TEST_F(TrustTest, DsaSignaturesAreRefusedAsUnsupported) {
  auto dsa = *dir_ / "keys" / "dsa";
  if (!std::filesystem::exists(dsa)) {
    auto made = t::run({"ssh-keygen", "-q", "-t", "dsa", "-N", "", "-C", "dsa", "-f", dsa.string()});
    if (made.exit_code != 0) GTEST_SKIP() << "this ssh-keygen cannot make DSA keys: " << made.output;
  }
  t::SshKey dsa_key{dsa, trim(t::read_file(dsa.string() + ".pub"))};
  auto signers = AllowedSigners::parse(line("old@example.com", dsa_key) + line("fleet@example.com", *ed_), "mem");
  ASSERT_TRUE(signers) << signers.error().message;
  EXPECT_EQ(signers->entries()[0].key.kind, sshsig::KeyKind::other);
  auto unsigned_id = repo().commit("for dsa", false);
  auto id = resign(unsigned_id, dsa.string(), "git");
  auto r = verify_commit(raw(id), *signers, id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unsupported) << r.error().message;
  EXPECT_NE(r.error().message.find("ssh-dss"), std::string::npos) << r.error().message;
}

// Hostile input: no flipped bit anywhere in a signed commit crashes the verifier or gets a
// different payload accepted; no truncation of an allowed_signers file crashes the parser.
TEST_F(TrustTest, FlippedBitsAndTruncationsAreHandled) {
  auto id = repo().commit_with_key("robustness", *ec_);
  const std::string good = raw(id);
  auto signers = AllowedSigners::parse(line("fleet@example.com", *ed_) + line("ec@example.com", *ec_, "namespaces=\"git\""), "as");
  ASSERT_TRUE(signers);
  ASSERT_TRUE(verify_commit(good, *signers, id));
  const std::string payload = split_signed_commit(good).payload;
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto r = verify_commit(bad, *signers, id);
    if (r) {
      EXPECT_EQ(split_signed_commit(bad).payload, payload) << "accepted a changed payload, byte " << i;
    }
  }
  const std::string text = "# signers\n" + line("a@x,b@y", *rsa_, "namespaces=\"git\",valid-after=\"20200101\"") +
                           line("\"q p\"", *ec_, "cert-authority");
  for (std::size_t n = 0; n <= text.size(); ++n) {
    auto r = AllowedSigners::parse(std::string_view(text).substr(0, n), "as");
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::invalid_argument);
    }
  }
}

TEST(AllowedSignersLoad, MissingFileIsNotFound) {
  auto r = AllowedSigners::load("/nonexistent/allowed_signers");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_NE(r.error().message.find("/nonexistent/allowed_signers"), std::string::npos);
}

TEST(MatchPatternList, FollowsOpenSsh) {
  EXPECT_EQ(match_pattern_list("git", "git"), 1);
  EXPECT_EQ(match_pattern_list("git", "file,git"), 1);
  EXPECT_EQ(match_pattern_list("git", "g?t"), 1);
  EXPECT_EQ(match_pattern_list("git", "*"), 1);
  EXPECT_EQ(match_pattern_list("git", "file"), 0);
  EXPECT_EQ(match_pattern_list("git", ""), 0);
  EXPECT_EQ(match_pattern_list("git", "!git,*"), -1);
  EXPECT_EQ(match_pattern_list("a@example.com", "*@example.com"), 1);
  EXPECT_EQ(match_pattern_list("a@example.com", "*@example.org"), 0);
  EXPECT_EQ(match_pattern_list("*@example.com", "*@example.com"), 1);
}

TEST(ParseAbsoluteTime, FormatsOfOpenSsh) {
  EXPECT_EQ(parse_absolute_time("20200101Z"), 1577836800);
  EXPECT_EQ(parse_absolute_time("202001010130Z"), 1577842200);
  EXPECT_EQ(parse_absolute_time("20200101013001UTC"), 1577842201);
  EXPECT_FALSE(parse_absolute_time("2020-01-01"));
  EXPECT_FALSE(parse_absolute_time("2020010"));
  EXPECT_FALSE(parse_absolute_time("20201301"));
  EXPECT_FALSE(parse_absolute_time(""));
}

}  // namespace
}  // namespace eddy::ota
