#include "ota/slot_writer.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <mbedtls/sha256.h>
#include <sodium.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "platform/fault.hpp"
#include "platform/unique_fd.hpp"

namespace eddy::ota {

namespace stdfs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Writes go to the slot in chunks of this size, at offsets that are multiples of it.
constexpr std::size_t write_chunk = 4u << 20;
// Read-back compares a fingerprint per block of this size, to say where a difference starts
// without keeping the image: 8 bytes per MiB (128 KiB of fingerprints for a 16 GiB image).
constexpr std::size_t block_size = 1u << 20;
constexpr std::size_t alignment = 4096;

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0x0f];
  }
  return out;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string mib_text(std::uint64_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string(bytes >> 20) + " MiB)";
}

class Sha256 {
 public:
  Sha256() {
    mbedtls_sha256_init(&context_);
    (void)mbedtls_sha256_starts_ret(&context_, 0);
  }
  ~Sha256() { mbedtls_sha256_free(&context_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  // The software implementation fails only on hardware-accelerator errors, which it lacks.
  void update(const char* data, std::size_t size) {
    (void)mbedtls_sha256_update_ret(&context_, reinterpret_cast<const unsigned char*>(data), size);
  }
  std::string finish_hex() {
    std::array<unsigned char, 32> digest{};
    (void)mbedtls_sha256_finish_ret(&context_, digest.data());
    return to_hex(digest.data(), digest.size());
  }

 private:
  mbedtls_sha256_context context_;
};

// Per-block SipHash fingerprints (libsodium's crypto_shorthash, keyed at random per write):
// cheap next to SHA-256, and only there to locate a difference that SHA-256 proves.
class BlockFingerprints {
 public:
  BlockFingerprints() { crypto_shorthash_keygen(key_.data()); }

  // `data` starts at a block boundary; its last block may be partial only at the image's end.
  void add(const char* data, std::size_t size) {
    for (std::size_t at = 0; at < size; at += block_size)
      fingerprints_.push_back(of(data + at, std::min(block_size, size - at)));
  }
  // The first block of `data` (at `offset`, a block boundary) whose fingerprint differs.
  std::optional<std::uint64_t> first_difference(std::uint64_t offset, const char* data, std::size_t size) const {
    for (std::size_t at = 0; at < size; at += block_size) {
      std::size_t index = static_cast<std::size_t>((offset + at) / block_size);
      if (index >= fingerprints_.size() || fingerprints_[index] != of(data + at, std::min(block_size, size - at)))
        return offset + at;
    }
    return std::nullopt;
  }

 private:
  std::uint64_t of(const char* data, std::size_t size) const {
    std::array<unsigned char, crypto_shorthash_BYTES> out{};
    crypto_shorthash(out.data(), reinterpret_cast<const unsigned char*>(data), size, key_.data());
    std::uint64_t value = 0;
    std::memcpy(&value, out.data(), sizeof value);
    return value;
  }

  std::array<unsigned char, crypto_shorthash_KEYBYTES> key_{};
  std::vector<std::uint64_t> fingerprints_;
};

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<char, FreeDeleter>;

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// Progress at most once per `every`, plus a last report at the end of a phase.
class ProgressReporter {
 public:
  ProgressReporter(const SlotProgressCallback& callback, std::chrono::milliseconds every)
      : callback_(callback), every_(every) {}

  void start(SlotWriteProgress::Phase phase) {
    report_.phase = phase;
    report_.bytes_out = 0;
    started_ = last_ = Clock::now();
  }
  void update(std::uint64_t bytes_in, std::uint64_t bytes_out, std::optional<std::uint64_t> image_size, bool last) {
    if (!callback_) return;
    auto now = Clock::now();
    if (!last && now - last_ < every_) return;
    last_ = now;
    report_.bytes_in = bytes_in;
    report_.bytes_out = bytes_out;
    report_.image_size = image_size;
    report_.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - started_);
    double seconds = std::chrono::duration<double>(now - started_).count();
    report_.bytes_per_second = seconds > 0 ? static_cast<double>(bytes_out) / seconds : 0;
    callback_(report_);
  }

 private:
  const SlotProgressCallback& callback_;
  std::chrono::milliseconds every_;
  SlotWriteProgress report_;
  Clock::time_point started_{};
  Clock::time_point last_{};
};

struct OpenSlot {
  UniqueFd fd;
  std::uint64_t size = 0;
  bool block_device = false;
};

Expected<OpenSlot> open_slot(const stdfs::path& path, const std::string& name, bool for_writing) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return std::unexpected(errno_error(errno, "slot " + name + ": stat", path.string()));
  OpenSlot slot;
  slot.block_device = S_ISBLK(st.st_mode);
  if (!slot.block_device && !S_ISREG(st.st_mode))
    return make_error(Errc::invalid_argument,
                      "slot " + name + ": " + path.string() +
                          " is neither a block device nor a regular file (check the slot's device "
                          "in the configuration)");
  int flags = O_CLOEXEC | (for_writing ? O_RDWR : O_RDONLY);
  // O_EXCL on a block device fails while it is mounted: never write into a live file system.
  if (slot.block_device && for_writing) flags |= O_EXCL;
  slot.fd = UniqueFd(::open(path.c_str(), flags));
  if (!slot.fd) {
    int err = errno;
    if (err == EBUSY)
      return make_error(Errc::conflict, "slot " + name + ": " + path.string() +
                                            " is in use (mounted, or held by another program): it cannot be the "
                                            "inactive slot; check the slot configuration");
    return std::unexpected(errno_error(err, "slot " + name + ": open", path.string()));
  }
  if (slot.block_device) {
    std::uint64_t bytes = 0;
    if (::ioctl(slot.fd.get(), BLKGETSIZE64, &bytes) != 0)
      return std::unexpected(errno_error(errno, "slot " + name + ": BLKGETSIZE64", path.string()));
    slot.size = bytes;
  } else {
    slot.size = static_cast<std::uint64_t>(st.st_size);
  }
  return slot;
}

Status pwrite_all(int fd, const char* data, std::size_t size, std::uint64_t offset, const std::string& name,
                  const stdfs::path& path) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return std::unexpected(
          errno_error(err, "slot " + name + ": write at byte " + std::to_string(offset) + " of", path.string()));
    }
    if (n == 0)
      return make_error(Errc::io, "slot " + name + ": write at byte " + std::to_string(offset) + " of " +
                                      path.string() + " wrote nothing");
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

Expected<std::size_t> pread_full(int fd, char* data, std::size_t size, std::uint64_t offset, const std::string& name,
                                 const stdfs::path& path) {
  std::size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, data + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return std::unexpected(errno_error(
          err, "slot " + name + ": read back at byte " + std::to_string(offset + got) + " of", path.string()));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

Error zstd_error(std::size_t code, const std::string& name, std::uint64_t bytes_in, int max_window_log) {
  std::string where = "slot " + name + ": the image's zstd stream ";
  if (ZSTD_getErrorCode(code) == ZSTD_error_frameParameter_windowTooLarge)
    return Error{Errc::invalid_argument,
                 where + "needs a decoding window larger than " + std::to_string((1ull << max_window_log) >> 20) +
                     " MiB, more memory than a device update may take: compress it with a level up to 19 and "
                     "without --long"};
  return Error{Errc::invalid_argument, where + "is corrupt near compressed byte " + std::to_string(bytes_in) + ": " +
                                           ZSTD_getErrorName(code) + " (rebuild the release's image)"};
}

// The content size a zstd frame header states, if it is a zstd frame and states one.
std::optional<std::uint64_t> frame_content_size(const char* data, std::size_t size) {
  static_assert(ZSTD_MAGICNUMBER == 0xFD2FB528);
  static constexpr std::string_view magic("\x28\xb5\x2f\xfd", 4);  // little-endian in the stream
  // Not zstd (the decoder will say so), or a skippable frame first.
  if (std::string_view(data, std::min(size, magic.size())) != magic) return std::nullopt;
  unsigned long long content = ZSTD_getFrameContentSize(data, size);
  if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR) return std::nullopt;
  return content;
}

}  // namespace

Expected<std::uint64_t> slot_size(const stdfs::path& slot) {
  auto open = open_slot(slot, slot.string(), false);
  if (!open) return std::unexpected(open.error());
  return open->size;
}

Expected<SlotWriteResult> write_slot_image(ByteStream& compressed, const stdfs::path& path,
                                           const SlotWriteOptions& options) {
  const std::string name = options.slot_name.empty() ? path.string() : options.slot_name;
  if (options.max_window_log < 10 || options.max_window_log > 31)
    return make_error(Errc::invalid_argument, "slot " + name + ": max_window_log " +  // zstd accepts 10 to 31
                                                  std::to_string(options.max_window_log) + " is out of range");
  if (sodium_init() < 0) return make_error(Errc::internal, "libsodium failed to initialise");

  auto opened = open_slot(path, name, true);
  if (!opened) return std::unexpected(opened.error());
  const int fd = opened->fd.get();
  const std::uint64_t capacity = opened->size;
  auto too_large = [&](std::uint64_t at_least) {
    return make_error(Errc::too_large, "slot " + name + " (" + path.string() + ") holds " + mib_text(capacity) +
                                           ", the image is at least " + mib_text(at_least) +
                                           ": use a smaller image or a larger slot partition");
  };

  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return make_error(Errc::internal, "slot " + name + ": out of memory for the zstd decoder");
  if (std::size_t r = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, options.max_window_log); ZSTD_isError(r))
    return make_error(Errc::internal, std::string("zstd: ") + ZSTD_getErrorName(r));

  std::vector<char> input_buffer(ZSTD_DStreamInSize());
  AlignedBuffer out(static_cast<char*>(std::aligned_alloc(alignment, write_chunk)));
  if (!out) return make_error(Errc::internal, "slot " + name + ": out of memory for the write buffer");

  Sha256 sha;
  BlockFingerprints fingerprints;
  ProgressReporter progress(options.progress, options.progress_every);
  progress.start(SlotWriteProgress::Phase::writing);

  std::uint64_t bytes_in = 0;
  std::uint64_t written = 0;
  std::size_t fill = 0;
  std::optional<std::uint64_t> image_size;
  bool header_seen = false;
  std::array<char, 18> header{};  // ZSTD_FRAMEHEADERSIZE_MAX: enough for any frame header
  std::size_t header_size = 0;
  std::size_t last_result = 1;  // 0 once a frame is complete and flushed
  bool passed_25 = false;
  bool passed_50 = false;

  auto flush = [&]() -> Status {
    if (fill == 0) return {};
    if (written + fill > capacity) return too_large(written + fill);
    sha.update(out.get(), fill);
    fingerprints.add(out.get(), fill);
    if (auto s = pwrite_all(fd, out.get(), fill, written, name, path); !s) return s;
    written += fill;
    fill = 0;
    // Fault points for the crash matrix, against the image size (or the slot's when unknown).
    const std::uint64_t total = image_size.value_or(capacity);
    if (!passed_25 && written * 4 >= total) {
      passed_25 = true;
      fault::point("slot:written-25%");
    }
    if (!passed_50 && written * 2 >= total) {
      passed_50 = true;
      fault::point("slot:written-50%");
    }
    progress.update(bytes_in, written, image_size, false);
    return {};
  };

  for (;;) {
    auto n = compressed.read(input_buffer.data(), input_buffer.size());
    if (!n) return std::unexpected(n.error().with_context("slot " + name));
    if (*n == 0) break;
    bytes_in += *n;
    if (!header_seen) {
      // The zstd CLI writes the content size into the frame header: an image that cannot fit is
      // refused before a byte is written. (A stream of several frames states only the first's.)
      std::size_t take = std::min(*n, header.size() - header_size);
      std::memcpy(header.data() + header_size, input_buffer.data(), take);
      header_size += take;
      if (header_size == header.size()) {
        header_seen = true;
        if (auto size = frame_content_size(header.data(), header_size)) {
          image_size = *size;
          if (*image_size > capacity) return too_large(*image_size);
        }
      }
    }
    ZSTD_inBuffer in{input_buffer.data(), *n, 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer output{out.get() + fill, write_chunk - fill, 0};
      std::size_t r = ZSTD_decompressStream(dctx.get(), &output, &in);
      if (ZSTD_isError(r)) return std::unexpected(zstd_error(r, name, bytes_in, options.max_window_log));
      fill += output.pos;
      last_result = r;
      if (fill == write_chunk) {
        if (auto s = flush(); !s) return std::unexpected(s.error());
      }
    }
  }
  if (bytes_in == 0)
    return make_error(Errc::invalid_argument, "slot " + name + ": the image is empty (not a zstd stream)");
  if (last_result != 0)
    return make_error(Errc::invalid_argument, "slot " + name + ": the image's zstd stream is truncated after " +
                                                  std::to_string(bytes_in) +
                                                  " compressed bytes (an incomplete download or upload?)");
  if (auto s = flush(); !s) return std::unexpected(s.error());
  progress.update(bytes_in, written, image_size, true);

  fault::point("slot:before-fsync");
  // fdatasync is enough: a slot's size never changes (files are never grown), only its data.
  if (::fdatasync(fd) != 0) return std::unexpected(errno_error(errno, "slot " + name + ": fdatasync", path.string()));

  SlotWriteResult result;
  result.compressed_bytes = bytes_in;
  result.image_bytes = written;
  result.image_sha256 = sha.finish_hex();
  if (options.expected_image_sha256 && lowercase(*options.expected_image_sha256) != result.image_sha256)
    return make_error(Errc::digest_mismatch, "slot " + name + ": the decompressed image's sha256 is " +
                                                 result.image_sha256 + ", the release says " +
                                                 lowercase(*options.expected_image_sha256));

  fault::point("slot:before-verify");
  if (options.before_verify) options.before_verify();

  // Read back from the device rather than from the page cache: drop the (now clean) cached
  // pages first. A hint only; where it is not honoured the check still catches bad writes
  // that the kernel reported.
  (void)::posix_fadvise(fd, 0, static_cast<off_t>(written), POSIX_FADV_DONTNEED);
  progress.start(SlotWriteProgress::Phase::verifying);
  Sha256 readback;
  for (std::uint64_t offset = 0; offset < written;) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(write_chunk, written - offset));
    auto got = pread_full(fd, out.get(), want, offset, name, path);
    if (!got) return std::unexpected(got.error());
    if (*got < want)
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(offset + *got) +
                                      ": the slot ends there (" + path.string() + " shrank while being written?)");
    if (auto at = fingerprints.first_difference(offset, out.get(), want))
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(*at) +
                                      " (in the block of " + std::to_string(block_size) + " bytes from there): " +
                                      path.string() + " does not keep what was written; the storage may be failing");
    readback.update(out.get(), want);
    offset += want;
    progress.update(bytes_in, offset, image_size, false);
  }
  progress.update(bytes_in, written, image_size, true);
  if (std::string digest = readback.finish_hex(); digest != result.image_sha256)
    return make_error(Errc::io, "slot " + name + ": read-back differs: sha256 " + digest + " read, " +
                                    result.image_sha256 + " written (" + path.string() + ")");
  return result;
}

namespace {

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
