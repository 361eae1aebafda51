#include "ota/assignment.hpp"

#include <mbedtls/sha256.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>

namespace eddy::ota {
namespace {

// "10", "2.5", "0.25": percents and places as people read them, without trailing zeros.
std::string number_text(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string s(buffer);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out))
    return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
  return out;
}

std::int64_t saturating_mul(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return std::numeric_limits<std::int64_t>::max();  // both >= 0 here
  return out;
}

std::string step_text(std::size_t index, const Rollout& r) {
  return "step " + std::to_string(index + 1) + " of " + std::to_string(r.steps.size()) + " (" +
         number_text(r.steps[index], 3) + "%)";
}

std::string values_text(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ", ") + v;
  return out;
}

}  // namespace

double place_in_line(std::string_view device_id, std::string_view rollout_name) {
  std::string input;
  input.reserve(device_id.size() + 1 + rollout_name.size());
  input.append(device_id).append("/").append(rollout_name);
  std::array<unsigned char, 32> digest{};
  // mbedtls_sha256_ret fails only on hardware-accelerator errors, which the software build lacks.
  (void)mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data(), 0);
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value = (value << 8) | digest[i];
  // The top 53 bits fit a double exactly: a fraction in [0, 1), scaled to percent.
  const double fraction = static_cast<double>(value >> 11) / 9007199254740992.0;  // 2^53
  const double place = fraction * 100.0;
  return place < 100.0 ? place : std::nextafter(100.0, 0.0);
}

bool selects(const Rollout& rollout, const DeviceIdentity& device) {
  return std::all_of(rollout.match_labels.begin(), rollout.match_labels.end(), [&](const auto& label) {
    auto it = device.labels.find(label.first);
    return it != device.labels.end() && it->second == label.second;
  });
}

bool compatible_with(const Release& release, const DeviceIdentity& device) {
  return std::all_of(release.compatible.begin(), release.compatible.end(), [&](const auto& label) {
    auto it = device.labels.find(label.first);
    return it != device.labels.end() &&
           std::find(label.second.begin(), label.second.end(), it->second) != label.second.end();
  });
}

Expected<AssignmentResult> assign(const Fleet& fleet, const DeviceIdentity& device,
                                  const std::function<std::int64_t(const Rollout&)>& rollout_start, std::int64_t now) {
  AssignmentResult result;
  std::map<std::string, const Rollout*> by_target;

  for (const Rollout& rollout : fleet.rollouts) {
    if (!selects(rollout, device)) continue;
    auto rel = fleet.releases.find(rollout.release);
    if (rel == fleet.releases.end()) {
      return make_error(Errc::not_found, rollout.file + ":" + std::to_string(rollout.release_line) + ": release `" +
                                             rollout.release + "` does not exist in the fleet");
    }
    const Release& release = rel->second;
    if (!compatible_with(release, device)) {
      std::string why = "rollout `" + rollout.name + "` (" + rollout.file + "): release `" + release.name +
                        "` is not compatible with this device:";
      for (const auto& [label, allowed] : release.compatible) {
        auto have = device.labels.find(label);
        if (have != device.labels.end() && std::find(allowed.begin(), allowed.end(), have->second) != allowed.end()) {
          continue;
        }
        why += " it needs " + label + " in [" + values_text(allowed) + "], the device has " +
               (have == device.labels.end() ? "no " + label + " label" : label + "=" + have->second) + ";";
      }
      why.pop_back();
      result.skipped.push_back(std::move(why));
      continue;
    }
    if (auto [other, inserted] = by_target.emplace(release.target, &rollout); !inserted) {
      return make_error(Errc::invalid_argument,
                        "rollouts " + other->second->file + " and " + rollout.file + " both select this device (" +
                            device.id + ") for target `" + release.target +
                            "`: narrow their selectors so that each device has one rollout per target");
    }

    Assignment a;
    a.target = release.target;
    a.rollout = rollout.name;
    a.release = release;

    const double place = place_in_line(device.id, rollout.name);
    const std::int64_t start = rollout_start(rollout);
    const std::int64_t bake = rollout.bake.count();
    // The open step: step 0 always (see the header), then one more per bake period elapsed.
    std::size_t open = rollout.steps.size() - 1;
    if (bake > 0) {
      const std::int64_t elapsed = now > start ? now - start : 0;
      const auto periods = static_cast<std::uint64_t>(elapsed / bake);
      open = static_cast<std::size_t>(std::min<std::uint64_t>(periods, rollout.steps.size() - 1));
    }
    const double percent = rollout.steps[open];
    a.admitted = place < percent;
    a.reason = step_text(open, rollout) + " admits places below " + number_text(percent, 3) + "; this device is at " +
               number_text(place, 2);
    if (!a.admitted) {
      // The first later step wide enough for this device, if any.
      for (std::size_t i = open + 1; i < rollout.steps.size(); ++i) {
        if (place < rollout.steps[i]) {
          a.next_step_at = saturating_add(start, saturating_mul(static_cast<std::int64_t>(i), bake));
          a.reason += "; its turn comes with " + step_text(i, rollout);
          break;
        }
      }
      if (!a.next_step_at) a.reason += "; no step of this rollout reaches it";
    }
    result.assignments.push_back(std::move(a));
  }
  return result;
}

}  // namespace eddy::ota
