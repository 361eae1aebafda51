// Names for the hub's threads, as `top -H`, `perf report --sort tid` and /proc/PID/task/*/comm
// show them (bench/hub_load.cpp reports each one's CPU per report by name). The loop thread that
// owns the store is the process's main thread and keeps the executable's name ("eddy-hub"), so
// that ps, pidof and the journal still find the hub by it.
#pragma once

#include <pthread.h>

namespace eddy::fleet {

// At most 15 characters (the kernel's limit); a longer name is left out, not cut.
inline void name_this_thread(const char* name) { (void)::pthread_setname_np(::pthread_self(), name); }

}  // namespace eddy::fleet
