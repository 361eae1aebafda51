#include "ota/slot_device.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <vector>

namespace eddy::ota {

namespace stdfs = std::filesystem;

namespace {

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// udev's encoding of labels in /dev/disk/by-label names (libudev's encode_devnode_name): bytes
// outside [0-9A-Za-z#+-.:=@_] and outside valid UTF-8 sequences become "\xHH".
std::string udev_encode(std::string_view s) {
  static constexpr std::string_view plain = "#+-.:=@_";
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t seq = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool valid_utf8 =
        seq > 1 && i + seq <= s.size() &&
        std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i + 1), s.begin() + static_cast<std::ptrdiff_t>(i + seq),
                    [](char b) { return (static_cast<unsigned char>(b) & 0xc0) == 0x80; });
    if (valid_utf8) {
      out.append(s.substr(i, seq));
      i += seq;
      continue;
    }
    if (std::isalnum(c) || plain.find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    } else {
      static constexpr char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0x0f];
    }
    ++i;
  }
  return out;
}

}  // namespace

Expected<stdfs::path> resolve_slot_device(std::string_view spec, const stdfs::path& dev_dir) {
  const std::string text(spec);
  if (text.empty())
    return make_error(Errc::invalid_argument,
                      "slot device is empty: give a path such as /dev/mmcblk0p2, or "
                      "PARTUUID=, PARTLABEL=, UUID= or LABEL=");
  std::error_code ec;
  if (text.front() == '/') {
    stdfs::path path = stdfs::path(text).lexically_normal();
    auto rel = path.lexically_relative("/dev");
    if (!rel.empty() && *rel.begin() != "..") path = dev_dir / rel;
    if (!stdfs::exists(path, ec))
      return make_error(Errc::not_found, "slot device " + text + " does not exist (check the slot configuration)");
    return path;
  }

  struct Form {
    std::string_view prefix;
    std::string_view folder;
    bool case_insensitive;
    bool encoded;
  };
  static constexpr std::array<Form, 4> forms{{
      {"PARTUUID=", "by-partuuid", true, false},
      {"PARTLABEL=", "by-partlabel", false, true},
      {"UUID=", "by-uuid", true, false},
      {"LABEL=", "by-label", false, true},
  }};
  for (const auto& form : forms) {
    if (!spec.starts_with(form.prefix)) continue;
    std::string value(spec.substr(form.prefix.size()));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (value.empty()) return make_error(Errc::invalid_argument, "slot device \"" + text + "\": the value is empty");
    if (form.encoded) value = udev_encode(value);
    const stdfs::path folder = dev_dir / "disk" / form.folder;
    std::vector<stdfs::path> candidates{folder / value};
    if (form.case_insensitive) {
      candidates.push_back(folder / lowercase(value));
      std::string upper = value;
      std::transform(upper.begin(), upper.end(), upper.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      candidates.push_back(folder / upper);
    }
    for (const auto& link : candidates) {
      if (!stdfs::exists(link, ec)) continue;
      auto target = stdfs::canonical(link, ec);
      if (ec)
        return make_error(Errc::io, "slot device " + text + ": cannot resolve " + link.string() + ": " + ec.message());
      return target;
    }
    return make_error(Errc::not_found, "slot device " + text + ": no " + folder.string() + "/" + value +
                                           " (is the partition there, and does udev run? `ls -l " + folder.string() +
                                           "` lists what exists)");
  }
  return make_error(Errc::invalid_argument, "slot device \"" + text +
                                                "\": give a path such as /dev/mmcblk0p2, or PARTUUID=, PARTLABEL=, "
                                                "UUID= or LABEL=");
}

}  // namespace eddy::ota
