#include "platform/byte_size.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <map>
#include <string>

namespace eddy {

Expected<std::uint64_t> parse_byte_size(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return make_error(Errc::invalid_argument, "invalid size `" + std::string(text) + "`: " + std::string(why) +
                                                  " (write it like 512MiB, 2GB or a number of bytes)");
  };
  std::uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc::result_out_of_range) return fail("too large");
  if (ec != std::errc() || end == text.data()) return fail("expected a number");
  std::string unit(end, text.data() + text.size());
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  static const std::map<std::string, std::uint64_t> units{
      {"", 1},          {"b", 1},
      {"k", 1000},      {"kb", 1000},        {"kib", 1ull << 10},
      {"m", 1000'000},  {"mb", 1000'000},    {"mib", 1ull << 20},
      {"g", 1000'000'000}, {"gb", 1000'000'000}, {"gib", 1ull << 30},
      {"t", 1000'000'000'000}, {"tb", 1000'000'000'000}, {"tib", 1ull << 40}};
  auto it = units.find(unit);
  if (it == units.end()) return fail("unknown unit");
  if (number > std::numeric_limits<std::uint64_t>::max() / it->second) return fail("too large");
  return number * it->second;
}

}  // namespace eddy
