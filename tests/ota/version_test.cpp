#include "ota/version.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace eddy::ota {
namespace {

struct Ordered {
  std::string_view lower;
  std::string_view higher;
};

// Each row: lower < higher. Checked both ways round.
constexpr Ordered kOrdered[] = {
    {"1.0", "1.1"},
    {"1.9", "1.10"},  // numeric, not textual
    {"1.2.3", "1.2.10"},
    {"1.2", "1.2.1"},
    {"0.9.9", "1.0.0"},
    {"1.2.0-rc.1", "1.2.0"},  // a prerelease sorts before its release
    {"1.2.0-alpha", "1.2.0-beta"},
    {"1.2.0-alpha", "1.2.0-alpha.1"},       // shorter identifier list first
    {"1.2.0-alpha.1", "1.2.0-alpha.beta"},  // numeric before alphanumeric
    {"1.2.0-rc.2", "1.2.0-rc.10"},
    {"1.2.0", "1.2.1-rc.1"},
    {"2024.06", "2024.11"},
    {"1.0.a", "1.0.b"},                                 // non-numeric segments compare as strings
    {"1.0.9", "1.0.a"},                                 // numeric before non-numeric
    {"99999999999999999999", "100000000000000000000"},  // longer than 64 bits
};

TEST(Version, Ordering) {
  for (const auto& [lower, higher] : kOrdered) {
    EXPECT_LT(compare_versions(lower, higher), 0) << lower << " < " << higher;
    EXPECT_GT(compare_versions(higher, lower), 0) << higher << " > " << lower;
  }
}

TEST(Version, Equal) {
  constexpr std::pair<std::string_view, std::string_view> kEqual[] = {
      {"1.2.3", "1.2.3"}, {"1.2", "1.2.0"},           {"v1.2", "1.2"}, {"1.2+build.7", "1.2"},
      {"01.2", "1.2"},    {"1.2.0-rc.1", "1.2-rc.1"}, {"", "0"},
  };
  for (const auto& [a, b] : kEqual) {
    EXPECT_EQ(compare_versions(a, b), 0) << a << " == " << b;
    EXPECT_EQ(compare_versions(b, a), 0) << b << " == " << a;
  }
}

}  // namespace
}  // namespace eddy::ota
