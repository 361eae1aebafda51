#include "tests/support/support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "platform/process.hpp"

namespace eddy::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/eddy-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("EDDY_KEEP_TEMP")) return;
  std::error_code ec;
  // Make everything writable again first: tests may have made files read-only.
  stdfs::remove_all(path_, ec);
  if (ec) {
    ::system(("chmod -R u+w '" + path_.string() + "' 2>/dev/null; rm -rf '" + path_.string() + "'").c_str());
  }
}

CommandResult run(const std::vector<std::string>& argv, const stdfs::path& cwd,
                  const std::map<std::string, std::string>& env) {
  process::Options options;
  const auto command = with_emulator(argv, cwd);
  options.cwd = cwd;
  options.env = env;
  options.timeout = std::chrono::seconds(120);
  options.max_output = 4 << 20;
  auto r = process::run(command, options);
  if (!r) throw std::runtime_error(r.error().message);
  return {r->exit_code, r->output};
}

std::string run_ok(const std::vector<std::string>& argv, const stdfs::path& cwd,
                   const std::map<std::string, std::string>& env) {
  auto r = run(argv, cwd, env);
  if (r.exit_code != 0)
    throw std::runtime_error(process::describe(argv) + " exited " + std::to_string(r.exit_code) + ": " + r.output);
  return r.output;
}

CommandResult sh(const std::string& script, const stdfs::path& cwd) {
  return run({"/bin/sh", "-c", script}, cwd);
}

void write_file(const stdfs::path& path, const std::string& content) {
  if (path.has_parent_path()) stdfs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

SshKey make_ssh_key(const stdfs::path& dir, const std::string& name, const std::string& type) {
  stdfs::create_directories(dir);
  SshKey key;
  key.private_key = dir / name;
  std::vector<std::string> argv = {"ssh-keygen", "-q", "-t", type, "-N", "", "-C", name + "@test",
                                   "-f", key.private_key.string()};
  if (type == "ecdsa") argv.insert(argv.end(), {"-b", "256"});
  if (type == "rsa") argv.insert(argv.end(), {"-b", "3072"});
  run_ok(argv);
  key.public_line = read_file(key.private_key.string() + ".pub");
  while (!key.public_line.empty() && key.public_line.back() == '\n') key.public_line.pop_back();
  return key;
}

namespace {
std::map<std::string, std::string> git_env() {
  // Commits made in tests must not depend on the machine's git configuration.
  return {{"GIT_CONFIG_NOSYSTEM", "1"},
          {"HOME", "/nonexistent"},
          {"GIT_AUTHOR_NAME", "Fleet Admin"},
          {"GIT_AUTHOR_EMAIL", "fleet@example.com"},
          {"GIT_COMMITTER_NAME", "Fleet Admin"},
          {"GIT_COMMITTER_EMAIL", "fleet@example.com"}};
}
}  // namespace

SignedRepo::SignedRepo(const stdfs::path& dir, SshKey key) : dir_(dir), key_(std::move(key)) {
  stdfs::create_directories(dir_);
  run_ok({"git", "init", "-q", "-b", "main", dir_.string()}, {}, git_env());
  run_ok({"git", "config", "gpg.format", "ssh"}, dir_, git_env());
  run_ok({"git", "config", "user.signingkey", key_.private_key.string()}, dir_, git_env());
}

void SignedRepo::write(const std::string& relative, const std::string& content) {
  write_file(dir_ / relative, content);
}

void SignedRepo::remove(const std::string& relative) { stdfs::remove_all(dir_ / relative); }

std::string SignedRepo::commit(const std::string& message, bool sign) {
  run_ok({"git", "add", "-A"}, dir_, git_env());
  std::vector<std::string> argv = {"git", "commit", "-q", "--allow-empty", "-m", message};
  if (sign) argv.push_back("-S");
  else argv.push_back("--no-gpg-sign");
  run_ok(argv, dir_, git_env());
  return head();
}

std::string SignedRepo::commit_with_key(const std::string& message, const SshKey& key) {
  run_ok({"git", "add", "-A"}, dir_, git_env());
  run_ok({"git", "-c", "user.signingkey=" + key.private_key.string(), "commit", "-q", "--allow-empty",
          "-S", "-m", message},
         dir_, git_env());
  return head();
}

std::string SignedRepo::head() const {
  auto out = run_ok({"git", "rev-parse", "HEAD"}, dir_, git_env());
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string SignedRepo::allowed_signers_line(const std::string& principal) const {
  return principal + " " + key_.public_line + "\n";
}

stdfs::path eddyd_path() { return EDDY_TEST_EDDYD; }
stdfs::path eddy_path() { return EDDY_TEST_EDDY; }
stdfs::path eddyd_worker_path() { return EDDY_TEST_EDDYD_WORKER; }
stdfs::path source_dir() { return EDDY_TEST_SOURCE_DIR; }

#ifndef EDDY_TEST_EMULATOR
#define EDDY_TEST_EMULATOR ""
#endif

const std::vector<std::string>& emulator() {
  static const std::vector<std::string> prefix = [] {
    std::vector<std::string> words;
    std::string_view list = EDDY_TEST_EMULATOR;  // words separated by '|'
    while (!list.empty()) {
      auto end = list.find('|');
      if (end != 0) words.emplace_back(list.substr(0, end));
      if (end == std::string_view::npos) break;
      list.remove_prefix(end + 1);
    }
    return words;
  }();
  return prefix;
}

namespace {
// The ELF machine (e_machine) of a file, or -1 when it is not an ELF file.
int elf_machine(const stdfs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char header[20] = {};
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) return -1;
  if (header[0] != 0x7f || header[1] != 'E' || header[2] != 'L' || header[3] != 'F') return -1;
  // e_machine: 2 bytes at offset 18, in the byte order of EI_DATA (1 little, 2 big endian).
  return header[5] == 2 ? header[18] << 8 | header[19] : header[19] << 8 | header[18];
}
}  // namespace

std::vector<std::string> with_emulator(std::vector<std::string> argv, const stdfs::path& cwd) {
  if (emulator().empty() || argv.empty() || argv[0].find('/') == std::string::npos) return argv;
  stdfs::path program = argv[0];
  if (program.is_relative() && !cwd.empty()) program = cwd / program;
  // Under qemu-user /proc/self/exe is the emulated test program, so this is the target's machine.
  static const int target = elf_machine("/proc/self/exe");
  if (target < 0 || elf_machine(program) != target) return argv;
  argv.insert(argv.begin(), emulator().begin(), emulator().end());
  return argv;
}

}  // namespace eddy::testing
