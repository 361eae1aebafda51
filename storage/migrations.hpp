#pragma once

#include <vector>

#include "storage/database.hpp"

namespace eddy::storage {
// The device database's schema, oldest first (storage/migrations/NNN_*.sql).
const std::vector<Migration>& device_migrations();
}  // namespace eddy::storage
