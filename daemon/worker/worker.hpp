// eddyd-worker: the update worker eddyd starts for each job (daemon/update_worker.hpp). It
// reads the job from descriptor 3 (daemon/worker_protocol.hpp), runs it with the Updater, asks
// eddyd to restart or stop apps, reports what it is doing, and exits. All of libgit2,
// libarchive, mbedTLS, libsodium and zstd live here and not in eddyd.
#pragma once

#include "daemon/config.hpp"
#include "ota/updater.hpp"
#include "platform/unique_fd.hpp"

namespace eddy::daemon {

ota::UpdaterOptions updater_options(const Config& config);

// Run the job that eddyd sends over `channel` (a connected stream socket). Returns the exit
// status: 0 when the job's result (or its error) was reported, 1 when eddyd could not be told.
int run_update_worker(UniqueFd channel);

}  // namespace eddy::daemon
