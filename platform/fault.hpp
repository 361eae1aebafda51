// Fault points for crash tests, compiled in only with -DEDDY_FAULT_INJECTION=ON (never in
// release packages). EDDY_FAULT_KILL_AT=<name> makes the process SIGKILL itself the first time
// it reaches the point named <name> (say "state:downloading"), as a power cut would stop it.
// EDDY_FAULT_KILL_ALSO=<pid> names a process that goes down first, with the same SIGKILL: eddyd
// sets it to its own pid for its update worker, so that a point reached in the worker stops
// the whole agent, as a power cut would, and not just the worker.
#pragma once

#include <string_view>

namespace eddy::fault {

#ifdef EDDY_FAULT_INJECTION
void point(std::string_view name);
#else
inline void point(std::string_view) {}
#endif

}  // namespace eddy::fault
