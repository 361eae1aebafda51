// Version ordering for downgrade checks: semver-like, lenient for versions that are not semver.
#pragma once

#include <string_view>

namespace eddy::ota {

// Compares two release versions; returns <0, 0 or >0 as a sorts before, with or after b.
//
// - An optional leading `v` before a digit is ignored ("v1.2" == "1.2").
// - Build metadata after `+` is ignored, as in semver ("1.2+build7" == "1.2").
// - The release part (before the first `-`) is split at dots; segments compare numerically when
//   both are digits (of any length: "1.10" > "1.9"), otherwise as plain strings, and a numeric
//   segment sorts before a non-numeric one. A missing segment counts as 0 ("1.2" == "1.2.0").
// - A version with a `-prerelease` sorts before the same version without one ("1.2-rc.1" <
//   "1.2"); two prereleases compare by dot-separated identifiers as semver does (numeric
//   numerically, numeric before alphanumeric, a shorter prefix first: "rc" < "rc.1").
int compare_versions(std::string_view a, std::string_view b);

}  // namespace eddy::ota
