#include "ota/version.hpp"

#include <algorithm>
#include <cstddef>

namespace eddy::ota {
namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int sign(int v) { return (v > 0) - (v < 0); }

// Numeric strings of any length: drop leading zeros, then the longer is larger, then by text.
int compare_numeric(std::string_view a, std::string_view b) {
  auto strip = [](std::string_view s) {
    const auto first = s.find_first_not_of('0');
    return first == std::string_view::npos ? std::string_view{} : s.substr(first);
  };
  a = strip(a);
  b = strip(b);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return sign(a.compare(b));
}

int compare_identifier(std::string_view a, std::string_view b) {
  const bool an = all_digits(a);
  const bool bn = all_digits(b);
  if (an && bn) return compare_numeric(a, b);
  if (an != bn) return an ? -1 : 1;
  return sign(a.compare(b));
}

// Splits at the next dot; returns the segment and advances `rest` past it.
std::string_view next_segment(std::string_view& rest) {
  const auto dot = rest.find('.');
  const auto segment = rest.substr(0, dot);
  rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  return segment;
}

int compare_release(std::string_view a, std::string_view b) {
  while (!a.empty() || !b.empty()) {
    auto sa = next_segment(a);
    auto sb = next_segment(b);
    if (sa.empty()) sa = "0";
    if (sb.empty()) sb = "0";
    if (int c = compare_identifier(sa, sb); c != 0) return c;
  }
  return 0;
}

int compare_prerelease(std::string_view a, std::string_view b) {
  while (!a.empty() && !b.empty()) {
    if (int c = compare_identifier(next_segment(a), next_segment(b)); c != 0) return c;
  }
  if (a.empty() && b.empty()) return 0;
  return a.empty() ? -1 : 1;  // the shorter list of identifiers sorts first
}

struct Parts {
  std::string_view release;
  std::string_view prerelease;
  bool has_prerelease = false;
};

Parts split(std::string_view v) {
  if (v.size() > 1 && (v[0] == 'v' || v[0] == 'V') && v[1] >= '0' && v[1] <= '9') v.remove_prefix(1);
  v = v.substr(0, v.find('+'));
  Parts p;
  const auto dash = v.find('-');
  p.release = v.substr(0, dash);
  if (dash != std::string_view::npos) {
    p.prerelease = v.substr(dash + 1);
    p.has_prerelease = true;
  }
  return p;
}

}  // namespace

int compare_versions(std::string_view a, std::string_view b) {
  const Parts pa = split(a);
  const Parts pb = split(b);
  if (int c = compare_release(pa.release, pb.release); c != 0) return c;
  if (pa.has_prerelease != pb.has_prerelease) return pa.has_prerelease ? -1 : 1;
  return compare_prerelease(pa.prerelease, pb.prerelease);
}

}  // namespace eddy::ota
