// SHA-256 for the update worker: the one implementation the payload pipeline, the slot writer
// and deltas share. It is OpenSSL's libcrypto (already in the worker's process through libgit2
// and libssh2), which picks the CPU's SHA instructions at run time: SHA-NI on x86-64, the ARMv8
// crypto extensions where the core has them (Pi 5's Cortex-A76; Pi 4's Cortex-A72 lacks them and
// gets OpenSSL's NEON/assembly code, still faster than portable C).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::ota {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const char* data, std::size_t size);
  // The digest in lowercase hex. Errc::internal when libcrypto could not hash (no memory for
  // its context, or a configuration without SHA-256): no digest is ever made up.
  [[nodiscard]] Expected<std::string> finish_hex();

  // The digest of `data` in one call.
  [[nodiscard]] static Expected<std::string> hex_of(std::string_view data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eddy::ota
