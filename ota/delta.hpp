// Root filesystem deltas: a zstd frame compressed with the previous image as its prefix (what
// `zstd --patch-from=BASE NEW` makes). A device whose active slot holds the base downloads the
// delta and rebuilds the new image into the inactive slot; `eddy release delta` makes one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "ota/byte_stream.hpp"
#include "ota/slot_writer.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

// Rebuild an image from `delta` against `base` (the active slot: a block device, or a file
// standing in for one) into `target_slot`, from offset 0.
//
// First the base is checked: its first `base_size` bytes must hash to `base_sha256` (from the
// release), else Errc::digest_mismatch and nothing is written to the target. The base is then
// memory-mapped read-only and referenced as the decoder's prefix, never read into memory; the
// image is decoded straight into a shared mapping of the target (so no window buffer is kept:
// a --patch-from window spans base and image), hashed and fingerprinted in chunks of 1 MiB, and
// mapped pages are dropped as the decoder moves on, so resident memory stays bounded. Then, as
// write_slot_image does: fdatasync, the image's SHA-256 against options.expected_image_sha256
// (Errc::digest_mismatch), and a read-back of the slot (Errc::io). Progress reports compressed
// delta bytes in, image bytes out.
//
// The delta's frame header must state the image size (zstd and make_delta write it) and ask for
// a window of at most 2^options.max_delta_window_log. Errors: Errc::invalid_argument for a
// delta that is not one zstd frame, is truncated or corrupt (or does not fit this base);
// Errc::too_large for an image larger than the slot; errors of the input stream as they come.
//
// A file-backed target slot has its blocks allocated before the decoder writes (a full disk is
// Errc::no_space, not a fault in a mapping). An I/O error on a block device while a page of the
// mapping is read (the base, or the image written so far) raises SIGBUS, as for any mapping.
Expected<SlotWriteResult> write_slot_from_delta(ByteStream& delta, const std::filesystem::path& base,
                                                std::string_view base_sha256, std::uint64_t base_size,
                                                const std::filesystem::path& target_slot,
                                                const SlotWriteOptions& options = {});

// The SHA-256 (lowercase hex) of the first `size` bytes of `slot` (a block device or a file), as
// a delta's from_sha256 names its base: which delta, if any, fits the active slot. Errors name
// the slot: Errc::not_found, Errc::io, Errc::too_large when the slot is shorter than `size`.
Expected<std::string> slot_prefix_sha256(const std::filesystem::path& slot, std::uint64_t size);

struct DeltaInfo {
  std::uint64_t base_size = 0;
  std::string base_sha256;  // lowercase hex
  std::uint64_t image_size = 0;
  std::string image_sha256;
  std::uint64_t delta_size = 0;
  std::string delta_sha256;
  int level = 0;
  int window_log = 0;
  bool long_distance_matching = false;
};

// Make a delta from `base_image` to `new_image` (regular files, both memory-mapped) at zstd
// `level` (1 to 22; 19 by default in `eddy release delta`), with the parameters `zstd
// --patch-from` chooses: a window covering the larger image (2^(highest bit + 1), at most 2^31),
// long-distance matching when that window exceeds what the level's match finder searches, the
// content size and a checksum in the frame. `out_delta` is replaced atomically (a temporary file
// beside it, fsynced, renamed). Errors: Errc::not_found / Errc::invalid_argument naming the input,
// Errc::no_space and other I/O errors naming the output.
Expected<DeltaInfo> make_delta(const std::filesystem::path& base_image, const std::filesystem::path& new_image,
                               const std::filesystem::path& out_delta, int level);

}  // namespace eddy::ota
