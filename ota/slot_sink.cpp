#include "ota/slot_sink.hpp"
#include "platform/hex.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <mbedtls/sha256.h>
#include <sodium.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "platform/fault.hpp"
#include "platform/unique_fd.hpp"

namespace eddy::ota {

namespace stdfs = std::filesystem;

namespace detail {

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string mib_text(std::uint64_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string(bytes >> 20) + " MiB)";
}

struct Sha256::Impl {
  mbedtls_sha256_context context;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  mbedtls_sha256_init(&impl_->context);
  (void)mbedtls_sha256_starts_ret(&impl_->context, 0);
}
Sha256::~Sha256() { mbedtls_sha256_free(&impl_->context); }
// The software implementation fails only on hardware-accelerator errors, which it lacks.
void Sha256::update(const char* data, std::size_t size) {
  (void)mbedtls_sha256_update_ret(&impl_->context, reinterpret_cast<const unsigned char*>(data), size);
}
std::string Sha256::finish_hex() {
  std::array<unsigned char, 32> digest{};
  (void)mbedtls_sha256_finish_ret(&impl_->context, digest.data());
  return to_hex(digest.data(), digest.size());
}

}  // namespace detail

namespace {

using namespace detail;

using Clock = std::chrono::steady_clock;

// Read-back compares a fingerprint per block of this size, to say where a difference starts
// without keeping the image: 8 bytes per MiB (128 KiB of fingerprints for a 16 GiB image).
constexpr std::size_t block_size = 1u << 20;
constexpr std::size_t alignment = 4096;

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

}  // namespace

namespace detail {

struct SlotSink::State {
  OpenSlot slot;
  AlignedBuffer buffer;
  Sha256 sha;
  BlockFingerprints fingerprints;
  ProgressReporter progress;
  bool passed_25 = false;
  bool passed_50 = false;
  explicit State(const SlotWriteOptions& options) : progress(options.progress, options.progress_every) {}
};

SlotSink::SlotSink(const stdfs::path& slot, const SlotWriteOptions& options)
    : path_(slot), options_(options), name_(options.slot_name.empty() ? slot.string() : options.slot_name) {}
SlotSink::~SlotSink() = default;

int SlotSink::fd() const { return state_ ? state_->slot.fd.get() : -1; }
char* SlotSink::buffer() const { return state_ ? state_->buffer.get() : nullptr; }

Status SlotSink::open() {
  if (sodium_init() < 0) return make_error(Errc::internal, "libsodium failed to initialise");
  auto state = std::make_unique<State>(options_);
  auto opened = open_slot(path_, name_, true);
  if (!opened) return std::unexpected(opened.error());
  state->slot = std::move(*opened);
  capacity_ = state->slot.size;
  state->buffer.reset(static_cast<char*>(std::aligned_alloc(alignment, write_chunk)));
  if (!state->buffer) return make_error(Errc::internal, "slot " + name_ + ": out of memory for the write buffer");
  state->progress.start(SlotWriteProgress::Phase::writing);
  state_ = std::move(state);
  return {};
}

Error SlotSink::too_large(std::uint64_t at_least) const {
  return Error{Errc::too_large, "slot " + name_ + " (" + path_.string() + ") holds " + mib_text(capacity_) +
                                    ", the image is at least " + mib_text(at_least) +
                                    ": use a smaller image or a larger slot partition"};
}

Status SlotSink::set_image_size(std::uint64_t size) {
  image_size_ = size;
  if (size > capacity_) return std::unexpected(too_large(size));
  return {};
}

Status SlotSink::write(const char* data, std::size_t size, std::uint64_t bytes_in) {
  if (size == 0) return {};
  if (written_ + size > capacity_) return std::unexpected(too_large(written_ + size));
  if (auto s = pwrite_all(fd(), data, size, written_, name_, path_); !s) return s;
  return account(data, size, bytes_in);
}

Status SlotSink::account(const char* data, std::size_t size, std::uint64_t bytes_in) {
  if (size == 0) return {};
  if (written_ + size > capacity_) return std::unexpected(too_large(written_ + size));
  State& st = *state_;
  st.sha.update(data, size);
  st.fingerprints.add(data, size);
  written_ += size;
  // Fault points for the crash matrix, against the image size (or the slot's when unknown).
  const std::uint64_t total = image_size_.value_or(capacity_);
  if (!st.passed_25 && written_ * 4 >= total) {
    st.passed_25 = true;
    fault::point("slot:written-25%");
  }
  if (!st.passed_50 && written_ * 2 >= total) {
    st.passed_50 = true;
    fault::point("slot:written-50%");
  }
  st.progress.update(bytes_in, written_, image_size_, false);
  return {};
}

Expected<SlotWriteResult> SlotSink::finish(std::uint64_t bytes_in) {
  State& st = *state_;
  const int fd = st.slot.fd.get();
  const std::string& name = name_;
  const stdfs::path& path = path_;
  const std::uint64_t written = written_;
  st.progress.update(bytes_in, written, image_size_, true);

  fault::point("slot:before-fsync");
  // fdatasync is enough: a slot's size never changes (files are never grown), only its data.
  if (::fdatasync(fd) != 0) return std::unexpected(errno_error(errno, "slot " + name + ": fdatasync", path.string()));

  SlotWriteResult result;
  result.compressed_bytes = bytes_in;
  result.image_bytes = written;
  result.image_sha256 = st.sha.finish_hex();
  if (options_.expected_image_sha256 && lowercase(*options_.expected_image_sha256) != result.image_sha256)
    return make_error(Errc::digest_mismatch, "slot " + name + ": the decompressed image's sha256 is " +
                                                 result.image_sha256 + ", the release says " +
                                                 lowercase(*options_.expected_image_sha256));

  fault::point("slot:before-verify");
  if (options_.before_verify) options_.before_verify();

  // Read back from the device rather than from the page cache: drop the (now clean) cached
  // pages first. A hint only; where it is not honoured the check still catches bad writes
  // that the kernel reported.
  (void)::posix_fadvise(fd, 0, static_cast<off_t>(written), POSIX_FADV_DONTNEED);
  st.progress.start(SlotWriteProgress::Phase::verifying);
  char* out = st.buffer.get();
  Sha256 readback;
  for (std::uint64_t offset = 0; offset < written;) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(write_chunk, written - offset));
    auto got = pread_full(fd, out, want, offset, name, path);
    if (!got) return std::unexpected(got.error());
    if (*got < want)
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(offset + *got) +
                                      ": the slot ends there (" + path.string() + " shrank while being written?)");
    if (auto at = st.fingerprints.first_difference(offset, out, want))
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(*at) +
                                      " (in the block of " + std::to_string(block_size) + " bytes from there): " +
                                      path.string() + " does not keep what was written; the storage may be failing");
    readback.update(out, want);
    offset += want;
    st.progress.update(bytes_in, offset, image_size_, false);
  }
  st.progress.update(bytes_in, written, image_size_, true);
  if (std::string digest = readback.finish_hex(); digest != result.image_sha256)
    return make_error(Errc::io, "slot " + name + ": read-back differs: sha256 " + digest + " read, " +
                                    result.image_sha256 + " written (" + path.string() + ")");
  return result;
}

}  // namespace detail

Expected<std::uint64_t> slot_size(const stdfs::path& slot) {
  auto open = open_slot(slot, slot.string(), false);
  if (!open) return std::unexpected(open.error());
  return open->size;
}

}  // namespace eddy::ota
