// Lowercase hexadecimal of bytes (digests in messages, the release format's sha256 fields).
#pragma once

#include <cstddef>
#include <string>

namespace eddy {

inline std::string to_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0x0f];
  }
  return out;
}

}  // namespace eddy
