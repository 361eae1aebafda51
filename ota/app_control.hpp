// What the update engine needs from whoever keeps the apps' `run` commands alive: restart one
// in its (new) version folder, stop one. AppSupervisor does it in eddyd; eddyd's update worker
// asks eddyd for it over its socket (daemon/worker/), so the apps stay eddyd's children while
// the worker comes and goes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "platform/error.hpp"

namespace eddy::ota {

class AppControl {
 public:
  virtual ~AppControl() = default;
  // Start the supervised process of `name` (argv in cwd, the app's `current` link resolved to
  // its version folder now), stopping the one running under that name first.
  virtual Status restart(const std::string& name, const std::vector<std::string>& argv,
                         const std::filesystem::path& cwd) = 0;
  // Stop it (SIGTERM to its process group, SIGKILL after a grace period); no restarts after.
  virtual void stop(const std::string& name) = 0;
};

}  // namespace eddy::ota
