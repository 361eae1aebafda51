// Human-readable forms of the daemon's control replies (the JSON schemas are described in
// daemon/control_handler.hpp's contract). Formatting never fails: a missing or unexpected
// field shows as "-" rather than an error, so an older `eddy` still reads a newer daemon.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace eddy::cli {

std::string format_status(const nlohmann::json& status, std::int64_t now);
std::string format_history(const nlohmann::json& history);
std::string format_check(const nlohmann::json& check);
std::string format_rollback(const nlohmann::json& rollback);

// Does a check result mean failure (exit 1)? refused, rolled-back, failed.
bool check_failed(const nlohmann::json& check);

// Helpers, exposed for tests and for the other formatters of `eddy` (cli/rollout_format.cpp).
// Reading a reply never fails: a missing or mistyped field is null, `fallback`, or nullopt.
const nlohmann::json& field(const nlohmann::json& object, const char* key);
std::string text(const nlohmann::json& object, const char* key, const std::string& fallback = "-");
std::optional<std::int64_t> integer(const nlohmann::json& object, const char* key);
std::optional<double> real(const nlohmann::json& object, const char* key);
std::string short_commit(const std::string& commit);  // the first 12 hex digits
std::string duration_words(std::int64_t seconds);      // "45s", "3m20s", "2h5m", "1d3h"
// "2025-11-24 16:00:00 (3m ago)" of the epoch-seconds field `key`, or "-".
std::string when(const nlohmann::json& object, const char* key, std::int64_t now);
std::string local_time(std::int64_t epoch_seconds);
std::string relative_time(std::int64_t epoch_seconds, std::int64_t now);  // "in 45s", "3m ago"
std::string human_bytes(double bytes);                                     // "47.1 KiB"

}  // namespace eddy::cli
