// Internal to ota/: what writing a full image and rebuilding one from a delta share. A SlotSink
// owns the opened slot and accounts for the image as it is written (SHA-256, fault points,
// progress), and reads each chunk back from the device once it has been synced, beside the
// writing of the next ones; finish() syncs, checks the release's digest and reads back the last
// chunks. Not part of the public API: use ota/slot_writer.hpp and ota/delta.hpp.
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

  // Open the slot for writing (O_EXCL for block devices), again for the read-back (O_DIRECT where
  // the file system takes it), and allocate the chunk buffers.
  [[nodiscard]] Status open();
  const std::string& name() const { return name_; }
  const std::filesystem::path& path() const { return path_; }
  int fd() const;
  std::uint64_t capacity() const { return capacity_; }
  // Bytes written and accounted for (not counting a chunk still being written).
  std::uint64_t written() const { return written_; }
  // The buffer to fill next: write_chunk bytes, aligned for the device. Another one after each
  // write_buffer() or account(): the ones handed over are being written, synced and read back.
  char* buffer() const;

  // The image size when known (a zstd frame header): Errc::too_large when it cannot fit.
  [[nodiscard]] Status set_image_size(std::uint64_t size);
  std::optional<std::uint64_t> image_size() const { return image_size_; }
  Error too_large(std::uint64_t at_least) const;

  // Write the first `size` bytes of buffer() after what was handed over before, and account for
  // them. The write, the hashing and the read-back run beside the caller; the next
  // write_buffer(), account() or finish() reports their errors. `bytes_in` is the compressed
  // input so far.
  [[nodiscard]] Status write_buffer(std::size_t size, std::uint64_t bytes_in);
  // Account for `size` bytes the caller already put at the end of what was handed over (through
  // a shared mapping): they are copied for the read-back, synced and read back like written ones.
  [[nodiscard]] Status account(const char* data, std::size_t size, std::uint64_t bytes_in);

  // fdatasync, compare with options.expected_image_sha256, read back the chunks not read back
  // yet, and check that every byte was.
  [[nodiscard]] Expected<SlotWriteResult> finish(std::uint64_t bytes_in);

 private:
  // Hand the chunk in buffer() over: written (unless already in the slot), hashed, synced and
  // read back beside the caller.
  [[nodiscard]] Status hand_over(std::size_t size, std::uint64_t bytes_in, bool already_in_slot);
  // Wait for the chunk being written beside the caller and account for it.
  [[nodiscard]] Status drain();
  // Start reading back the chunks that are synced (one at a time, beside the caller).
  [[nodiscard]] Status read_back_synced();
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
