// A pull-based stream of bytes: payloads flow through a chain of these (download or Git blob
// → size limit and SHA-256 → zstd → tar) so that nothing is held whole in memory or on disk.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>

#include "platform/error.hpp"

namespace eddy::ota {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Read up to `size` bytes into `buffer`; 0 means the end of the stream. A stream that
  // verifies something (size, digest) reports a failure as an error from read(), at the
  // latest from the read that returns the end.
  virtual Expected<std::size_t> read(char* buffer, std::size_t size) = 0;
};

// A stream over bytes already in memory (a payload kept in Git, tests).
class MemoryStream final : public ByteStream {
 public:
  explicit MemoryStream(std::string data) : data_(std::move(data)) {}
  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    std::size_t n = std::min(size, data_.size() - offset_);
    data_.copy(buffer, n, offset_);
    offset_ += n;
    return n;
  }

 private:
  std::string data_;
  std::size_t offset_ = 0;
};

}  // namespace eddy::ota
