#pragma once
#include <string_view>

namespace eddy::daemon {
std::string_view version();
}  // namespace eddy::daemon
