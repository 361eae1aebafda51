// eddyd-worker: eddyd's short-lived update worker (daemon/worker/worker.hpp). Started by eddyd
// only, with its socket as descriptor 3; not a command for people.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "daemon/worker/worker.hpp"

int main(int argc, char** argv) {
  // eddyd starts it as `eddyd-worker --socket-fd 3`, its socket open as descriptor 3.
  if (argc != 3 || std::string_view(argv[1]) != "--socket-fd" || std::string_view(argv[2]) != "3" ||
      ::fcntl(3, F_GETFD) < 0) {
    std::fputs("eddyd-worker is eddyd's update worker; eddyd starts it, one per poll (see `eddyd --help`).\n", stderr);
    return 2;
  }
  // A worker never outlives eddyd: when eddyd dies (a crash, a watchdog kill), the worker
  // goes with it, as in a power cut, and the next eddyd recovers what it was doing.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGPIPE, SIG_IGN);
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  return eddy::daemon::run_update_worker(eddy::UniqueFd(3));
}
