#include "platform/fault.hpp"

#ifdef EDDY_FAULT_INJECTION
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "platform/log.hpp"

namespace eddy::fault {

void point(std::string_view name) {
  const char* target = std::getenv("EDDY_FAULT_KILL_AT");
  if (!target || name != target) return;
  log::warning("fault point " + std::string(name) + ": killing eddyd with SIGKILL (test fault injection)");
  if (const char* also = std::getenv("EDDY_FAULT_KILL_ALSO")) {
    char* end = nullptr;
    long pid = std::strtol(also, &end, 10);
    if (end != also && *end == '\0' && pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
  }
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

}  // namespace eddy::fault
#endif
