#include "platform/duration.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace eddy {

namespace {

struct Unit {
  std::string_view name;
  std::int64_t ms;
};
// Largest first; "ms" before "m" so the longer suffix wins.
constexpr std::array<Unit, 5> units{{{"d", 86'400'000}, {"h", 3'600'000}, {"ms", 1}, {"m", 60'000}, {"s", 1000}}};
constexpr std::array<std::string_view, 5> order{"d", "h", "m", "s", "ms"};

std::size_t rank(std::string_view unit) {
  for (std::size_t i = 0; i < order.size(); ++i)
    if (order[i] == unit) return i;
  return order.size();
}

}  // namespace

Expected<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return make_error(Errc::invalid_argument,
                      "bad duration `" + std::string(text) + "`: " + std::string(why) +
                          " (write it like 500ms, 5s, 10m, 2h or 1h30m)");
  };
  if (text.empty()) return fail("it is empty");
  std::int64_t total = 0;
  std::size_t last_rank = 0;
  bool first = true;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec == std::errc::result_out_of_range) return fail("the number is too large");
    if (ec != std::errc() || end == rest.data()) return fail("expected a number");
    if (value < 0) return fail("it must not be negative");
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
    const Unit* unit = nullptr;
    for (const auto& u : units) {
      if (rest.starts_with(u.name) &&
          (rest.size() == u.name.size() || (rest[u.name.size()] >= '0' && rest[u.name.size()] <= '9'))) {
        unit = &u;
        break;
      }
    }
    if (!unit) return fail(rest.empty() || (rest[0] >= '0' && rest[0] <= '9') ? "a unit is missing" : "unknown unit");
    std::size_t r = rank(unit->name);
    if (!first && r <= last_rank) return fail("units must go from largest to smallest, each once");
    first = false;
    last_rank = r;
    rest.remove_prefix(unit->name.size());
    if (value > (std::numeric_limits<std::int64_t>::max() - total) / unit->ms) return fail("it is too long");
    total += value * unit->ms;
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds duration) {
  std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  for (auto name : order) {
    for (const auto& u : units) {
      if (u.name != name) continue;
      if (ms >= u.ms) {
        out += std::to_string(ms / u.ms) + std::string(u.name);
        ms %= u.ms;
      }
    }
  }
  return out;
}

}  // namespace eddy
