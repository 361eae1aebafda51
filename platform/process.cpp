#include "platform/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace eddy::process {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> build_environment(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  out.reserve(merged.size());
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the child after fork: exec with an error reported through `err_fd` (close-on-exec), so
// the parent can tell "could not start" from "started and failed".
[[noreturn]] void exec_child(std::vector<std::string> argv, std::vector<std::string> env,
                             const std::filesystem::path& cwd, int err_fd) {
  setpgid(0, 0);
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
    int e = errno;
    (void)!write(err_fd, &e, sizeof e);
    _exit(127);
  }
  // A program named with a '/' is taken relative to cwd; a bare name is searched in PATH.
  std::string path_var;
  for (const auto& kv : env)
    if (kv.rfind("PATH=", 0) == 0) path_var = kv.substr(5);
  auto args = c_strings(argv);
  auto envp = c_strings(env);
  if (argv[0].find('/') != std::string::npos) {
    execve(argv[0].c_str(), args.data(), envp.data());
  } else {
    if (path_var.empty()) path_var = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    std::size_t start = 0;
    while (start <= path_var.size()) {
      auto end = path_var.find(':', start);
      if (end == std::string::npos) end = path_var.size();
      std::string candidate = path_var.substr(start, end - start) + "/" + argv[0];
      execve(candidate.c_str(), args.data(), envp.data());
      start = end + 1;
    }
    errno = ENOENT;
  }
  int e = errno;
  (void)!write(err_fd, &e, sizeof e);
  _exit(127);
}

// fork + exec with the start error reported back; returns the pid.
Expected<pid_t> start(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                      const std::map<std::string, std::string>& extra_env, int stdin_fd,
                      int out_fd, int pass_fd = -1) {
  if (argv.empty() || argv[0].empty()) return make_error(Errc::invalid_argument, "empty command");
  auto env = build_environment(extra_env);
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return std::unexpected(errno_error(errno, "pipe", "for " + describe(argv)));
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(err_pipe[0]);
    close(err_pipe[1]);
    return std::unexpected(errno_error(e, "fork", describe(argv)));
  }
  if (pid == 0) {
    close(err_pipe[0]);
    if (stdin_fd >= 0) dup2(stdin_fd, STDIN_FILENO);
    else {
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    }
    if (out_fd >= 0) {
      dup2(out_fd, STDOUT_FILENO);
      dup2(out_fd, STDERR_FILENO);
    }
    int keep = -1;
    if (pass_fd >= 0) {
      // Becomes descriptor 3 (the error pipe moves out of the way first), open across exec.
      if (err_pipe[1] == 3) err_pipe[1] = fcntl(3, F_DUPFD_CLOEXEC, 4);
      if (pass_fd != 3) dup2(pass_fd, 3);
      fcntl(3, F_SETFD, 0);
      keep = 3;
    }
    // Close everything else the parent had open (sockets, the database, pipes).
    for (int fd = 3; fd < 1024; ++fd)
      if (fd != err_pipe[1] && fd != keep) close(fd);
    exec_child(argv, std::move(env), cwd, err_pipe[1]);
  }
  close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status;
    waitpid(pid, &status, 0);
    return make_error(Errc::process, "cannot start " + describe(argv) +
                                         (cwd.empty() ? "" : " in " + cwd.string()) + ": " +
                                         std::strerror(child_errno));
  }
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string tail(const std::string& s, std::size_t n) {
  std::string out = s.size() > n ? "..." + s.substr(s.size() - n) : s;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

std::string describe(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\"'\\$`") == std::string::npos;
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

Expected<Result> run(const std::vector<std::string>& argv, const Options& options) {
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return std::unexpected(errno_error(errno, "pipe", "for " + describe(argv)));
  int in_pipe[2] = {-1, -1};
  if (options.stdin_data && pipe2(in_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return std::unexpected(errno_error(errno, "pipe", "for " + describe(argv)));
  }
  auto pid = start(argv, options.cwd, options.env, in_pipe[0], out_pipe[1]);
  close(out_pipe[1]);
  if (in_pipe[0] >= 0) close(in_pipe[0]);
  if (!pid) {
    close(out_pipe[0]);
    if (in_pipe[1] >= 0) close(in_pipe[1]);
    return std::unexpected(pid.error());
  }
  if (in_pipe[1] >= 0) {
    // Inputs are small (a signature payload); a child that does not read them sees EPIPE.
    signal(SIGPIPE, SIG_IGN);
    const std::string& data = *options.stdin_data;
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(in_pipe[1], data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    close(in_pipe[1]);
  }

  Result result;
  const auto deadline = Clock::now() + options.timeout;
  char buf[8192];
  bool open_out = true;
  while (open_out) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd pfd{out_pipe[0], POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      open_out = false;
      break;
    }
    if (result.output.size() < options.max_output)
      result.output.append(buf, std::min(static_cast<std::size_t>(n), options.max_output - result.output.size()));
  }
  close(out_pipe[0]);
  if (result.timed_out) {
    kill(-*pid, SIGKILL);
    int status;
    waitpid(*pid, &status, 0);
    result.exit_code = 128 + SIGKILL;
    return result;
  }
  // Output closed: the child exited or closed its descriptors; wait for it within the deadline.
  for (;;) {
    int status;
    pid_t w = waitpid(*pid, &status, WNOHANG);
    if (w == *pid) {
      result.exit_code = decode_status(status);
      break;
    }
    if (w < 0 && errno != EINTR) break;
    if (Clock::now() >= deadline) {
      kill(-*pid, SIGKILL);
      waitpid(*pid, &status, 0);
      result.timed_out = true;
      result.exit_code = 128 + SIGKILL;
      break;
    }
    usleep(2000);
  }
  return result;
}

Expected<Result> run_checked(const std::vector<std::string>& argv, const Options& options) {
  auto r = run(argv, options);
  if (!r) return r;
  if (r->timed_out)
    return make_error(Errc::timeout, describe(argv) + ": did not finish within " +
                                         std::to_string(options.timeout.count()) + " ms");
  if (r->exit_code != 0)
    return make_error(Errc::process, describe(argv) + ": exited with status " +
                                         std::to_string(r->exit_code) +
                                         (r->output.empty() ? "" : ": " + tail(r->output, 400)));
  return r;
}

Expected<pid_t> spawn(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                      const std::map<std::string, std::string>& env, int output_fd, int pass_fd) {
  return start(argv, cwd, env, -1, output_fd, pass_fd);
}

void terminate(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  kill(-pid, SIGTERM);
  kill(pid, SIGTERM);
  const auto deadline = Clock::now() + grace;
  int status;
  while (Clock::now() < deadline) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno == ECHILD)) {
      kill(-pid, SIGKILL);  // stragglers left in the group
      return;
    }
    usleep(5000);
  }
  kill(-pid, SIGKILL);
  waitpid(pid, &status, 0);
}

}  // namespace eddy::process
