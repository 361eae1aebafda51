// Writing a root filesystem image into an A/B slot: a zstd-compressed stream (already checked
// for size and SHA-256 by a VerifyingStream over the compressed bytes) is decoded and written
// to the slot as it arrives, bytes flowing once with fixed buffers, then synced and read back.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "ota/byte_stream.hpp"
#include "ota/slot_device.hpp"  // resolve_slot_device
#include "platform/error.hpp"

namespace eddy::ota {

struct SlotWriteProgress {
  enum class Phase { writing, verifying };
  Phase phase = Phase::writing;
  std::uint64_t bytes_in = 0;               // compressed bytes consumed
  // Image bytes written (writing), or read back (verifying). The read-back runs beside the writing,
  // each chunk once it is on the device; the verifying phase is its tail after the final fdatasync
  // and starts where it had got to (bytes_per_second counts the phase's own bytes).
  std::uint64_t bytes_out = 0;
  std::optional<std::uint64_t> image_size;  // from the zstd frame header when the encoder wrote it
  double bytes_per_second = 0;              // bytes_out over the phase's elapsed time
  std::chrono::milliseconds elapsed{0};
};
using SlotProgressCallback = std::function<void(const SlotWriteProgress&)>;

struct SlotWriteOptions {
  // The slot's name in messages ("rootfs.b"); the path when empty.
  std::string slot_name;
  // The SHA-256 of the decompressed image, when the release gives one (lowercase or uppercase hex).
  std::optional<std::string> expected_image_sha256;
  // Called at most once per `progress_every` in each phase, and once more at the end of each.
  SlotProgressCallback progress;
  std::chrono::milliseconds progress_every{250};
  // The largest zstd window accepted, as a power of two: the decoder's window is its biggest
  // buffer, so this bounds memory. 24 (16 MiB) admits every level up to 19 (--ultra levels
  // 20-22 and --long ask for more and are refused with a message that says so).
  int max_window_log = 24;
  // The same for a delta (ota/delta.hpp): its window spans the base and the new image, but the
  // delta decoder keeps no window buffer (it reads the base and the written image through
  // mappings), so this only refuses frames that ask for absurd distances. 31 (2 GiB) is zstd's limit.
  int max_delta_window_log = 31;
  // Test hook: runs once for each chunk of the image (bytes [offset, offset + size) of the slot),
  // after the chunk was written and synced, right before it is read back from the device (tests
  // change the slot here). It runs on the read-back's thread, beside the writing of later chunks.
  std::function<void(std::uint64_t offset, std::size_t size)> before_read_back;
};

struct SlotWriteResult {
  std::uint64_t compressed_bytes = 0;
  std::uint64_t image_bytes = 0;
  std::string image_sha256;  // lowercase hex, of the decompressed image, confirmed by read-back
};

// Decode `compressed` into `slot` (a block device, or a regular file standing in for one, which
// is never truncated or grown: its size is the slot's size) from offset 0 and fsync; compare the
// image's SHA-256 with options.expected_image_sha256; and read every chunk back from the device
// (O_DIRECT, not the page cache) once it has been synced, comparing it byte for byte with what was
// hashed and written. The read-back runs beside the decoding and writing of the next chunks.
// Memory is fixed: five 1 MiB buffers (four chunks in flight, one read back), zstd's input buffer
// and window (at most 2^max_window_log bytes). Block devices are opened with O_EXCL, so a
// mounted slot (the active root filesystem) is refused.
// Errors: an image larger than the slot: Errc::too_large, found before any byte goes past the
// end (at once when the zstd frame header states the size); a truncated or corrupt zstd stream:
// Errc::invalid_argument; a full disk: Errc::no_space; a read-back that differs (or another
// digest than the release's): Errc::io / Errc::digest_mismatch naming the slot and the byte;
// errors of the input stream (the compressed digest) as they come.
Expected<SlotWriteResult> write_slot_image(ByteStream& compressed, const std::filesystem::path& slot,
                                           const SlotWriteOptions& options = {});

// The size of a slot: BLKGETSIZE64 for a block device, the length of a regular file.
Expected<std::uint64_t> slot_size(const std::filesystem::path& slot);

}  // namespace eddy::ota
