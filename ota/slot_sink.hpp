// Internal to ota/: what writing a full image and rebuilding one from a delta share. A SlotSink
// owns the opened slot and accounts for the image as it is written (SHA-256, per-block
// fingerprints, fault points, progress), then syncs, checks the release's digest and reads the
// slot back. Not part of the public API: use ota/slot_writer.hpp and ota/delta.hpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "ota/slot_writer.hpp"
#include "platform/error.hpp"

namespace eddy::ota::detail {

// Writes go to the slot in chunks of this size, at offsets that are multiples of it.
inline constexpr std::size_t write_chunk = 1u << 20;

std::string lowercase(std::string s);
std::string mib_text(std::uint64_t bytes);


class SlotSink {
 public:
  SlotSink(const std::filesystem::path& slot, const SlotWriteOptions& options);
  ~SlotSink();
  SlotSink(const SlotSink&) = delete;
  SlotSink& operator=(const SlotSink&) = delete;

  // Open the slot for writing (O_EXCL for block devices) and allocate the chunk buffer.
  [[nodiscard]] Status open();
  const std::string& name() const { return name_; }
  const std::filesystem::path& path() const { return path_; }
  int fd() const;
  std::uint64_t capacity() const { return capacity_; }
  // Bytes written and accounted for (not counting a chunk still being written).
  std::uint64_t written() const { return written_; }
  // The buffer to fill next: write_chunk bytes, aligned for the device. Another one after each
  // write_buffer() (the one handed over is being written and hashed beside the caller).
  char* buffer() const;

  // The image size when known (a zstd frame header): Errc::too_large when it cannot fit.
  [[nodiscard]] Status set_image_size(std::uint64_t size);
  std::optional<std::uint64_t> image_size() const { return image_size_; }
  Error too_large(std::uint64_t at_least) const;

  // Write the first `size` bytes of buffer() after what was handed over before, and account for
  // them. The write and the hashing run beside the caller until the next write_buffer() or
  // finish(), which report their errors. `bytes_in` is the compressed input so far.
  [[nodiscard]] Status write_buffer(std::size_t size, std::uint64_t bytes_in);
  // Account for `size` bytes the caller already put at written() (through a shared mapping).
  [[nodiscard]] Status account(const char* data, std::size_t size, std::uint64_t bytes_in);

  // fdatasync, compare with options.expected_image_sha256, read back and compare.
  [[nodiscard]] Expected<SlotWriteResult> finish(std::uint64_t bytes_in);

 private:
  // Wait for the chunk being written beside the caller and account for it.
  [[nodiscard]] Status drain();
  [[nodiscard]] Status note_written(std::size_t size, std::uint64_t bytes_in);

  struct State;
  std::filesystem::path path_;
  const SlotWriteOptions& options_;
  std::string name_;
  std::uint64_t capacity_ = 0;
  std::uint64_t written_ = 0;
  std::optional<std::uint64_t> image_size_;
  std::unique_ptr<State> state_;
};

}  // namespace eddy::ota::detail
