// Shared test helpers: temporary folders, running real tools, a signed Git repository
// builder, free loopback ports and a wait that gives up by itself.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace eddy::testing {

namespace stdfs = std::filesystem;

// A fresh folder under $TMPDIR (or /tmp), removed with its contents on destruction unless
// EDDY_KEEP_TEMP is set in the environment.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const stdfs::path& path() const { return path_; }
  stdfs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  stdfs::path path_;
};

struct CommandResult {
  int exit_code;
  std::string output;  // stdout + stderr
};

// Run a command (no shell), capture output; throws std::runtime_error if it cannot start.
// In a cross build tested under emulation, a command whose argv[0] is an executable of the
// target architecture (eddyd, eddy, ...) runs through the emulator (with_emulator below).
CommandResult run(const std::vector<std::string>& argv, const stdfs::path& cwd = {},
                  const std::map<std::string, std::string>& env = {});
// Run and throw std::runtime_error (with the output) unless it exits 0.
std::string run_ok(const std::vector<std::string>& argv, const stdfs::path& cwd = {},
                   const std::map<std::string, std::string>& env = {});
// Run a shell snippet with /bin/sh -c.
CommandResult sh(const std::string& script, const stdfs::path& cwd = {});

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void write_file(const stdfs::path& path, const std::string& content);
std::string read_file(const stdfs::path& path);

// Poll `condition` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A TCP port on 127.0.0.1 that the OS just handed out (bound to port 0, then released).
int free_port();

// An SSH key made by ssh-keygen, with its allowed_signers line.
struct SshKey {
  stdfs::path private_key;   // public key at private_key + ".pub"
  std::string public_line;   // "ssh-ed25519 AAAA... comment"
};
// type: "ed25519", "ecdsa" (nistp256) or "rsa".
SshKey make_ssh_key(const stdfs::path& dir, const std::string& name, const std::string& type = "ed25519");

// A non-bare Git repository on branch `main` whose commits are signed the way users sign:
// gpg.format=ssh, user.signingkey, `git commit -S`.
class SignedRepo {
 public:
  SignedRepo(const stdfs::path& dir, SshKey key);
  const stdfs::path& dir() const { return dir_; }
  const SshKey& key() const { return key_; }
  std::string url() const { return "file://" + dir_.string(); }

  void write(const std::string& relative, const std::string& content);
  void remove(const std::string& relative);
  // Stage everything and commit; returns the new commit id. sign=false makes an unsigned commit.
  std::string commit(const std::string& message, bool sign = true);
  // Commit signed with another key (which may not be in allowed_signers).
  std::string commit_with_key(const std::string& message, const SshKey& key);
  std::string head() const;
  // Allowed-signers file content for the repo's key with the given principal.
  std::string allowed_signers_line(const std::string& principal = "fleet@example.com") const;

 private:
  stdfs::path dir_;
  SshKey key_;
};

// Paths of the built executables (set by CMake).
stdfs::path eddyd_path();
stdfs::path eddy_path();
stdfs::path eddyd_worker_path();  // eddyd's update worker, beside eddyd
stdfs::path source_dir();

// Cross builds tested under qemu-user set EDDY_TEST_EMULATOR (CMAKE_CROSSCOMPILING_EMULATOR,
// e.g. "qemu-aarch64|-L|/usr/aarch64-linux-gnu"): without a binfmt handler the kernel cannot
// exec an ARM program, so the tests' child processes of our own executables go through it.
// emulator() is that command prefix, empty in native builds.
const std::vector<std::string>& emulator();
// argv with emulator() in front when argv[0] names an executable of the target architecture
// (an ELF file for the same machine as this test program); argv unchanged otherwise.
std::vector<std::string> with_emulator(std::vector<std::string> argv, const stdfs::path& cwd = {});

}  // namespace eddy::testing
