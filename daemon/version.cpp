#include "daemon/version.hpp"

namespace eddy::daemon {
std::string_view version() { return EDDY_VERSION_STRING; }
}  // namespace eddy::daemon
