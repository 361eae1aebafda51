#include "ota/slot_sink.hpp"
#include "platform/hex.hpp"

#include <fcntl.h>
#include <linux/fs.h>
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
#include <future>
#include <system_error>
#include <utility>
#include <vector>

#include "ota/sha256.hpp"
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

// Runs `job` on a thread of its own, so that the caller's next step (decoding or reading the
// next chunk) overlaps it; inline when no thread can be made. At most one job is out at a time.
template <typename Job>
std::future<std::invoke_result_t<Job>> beside(Job job) {
  try {
    return std::async(std::launch::async, job);
  } catch (const std::system_error&) {
    std::promise<std::invoke_result_t<Job>> done;
    done.set_value(job());
    return done.get_future();
  }
}

// Open the slot again for the read-back, with O_DIRECT where the file system takes it, so
// that the bytes come from the device and never from the page cache. Empty when refused
// (tmpfs, some FUSE file systems): the read-back then drops the cached pages first.
UniqueFd open_direct(const stdfs::path& path) { return UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT)); }

}  // namespace

namespace detail {

struct SlotSink::State {
  OpenSlot slot;
  // Two chunk buffers: the caller fills one while the other is written and hashed beside it.
  std::array<AlignedBuffer, 2> buffers;
  std::size_t current = 0;
  // The chunk being written beside the caller, and where it goes.
  std::future<Status> pending;
  std::size_t pending_size = 0;
  std::uint64_t pending_bytes_in = 0;
  Sha256 sha;
  BlockFingerprints fingerprints;
  ProgressReporter progress;
  bool passed_25 = false;
  bool passed_50 = false;
  explicit State(const SlotWriteOptions& options) : progress(options.progress, options.progress_every) {}
  // A chunk still being written uses the members above: it ends before they go.
  ~State() {
    if (pending.valid()) pending.wait();
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

SlotSink::SlotSink(const stdfs::path& slot, const SlotWriteOptions& options)
    : path_(slot), options_(options), name_(options.slot_name.empty() ? slot.string() : options.slot_name) {}
SlotSink::~SlotSink() = default;

int SlotSink::fd() const { return state_ ? state_->slot.fd.get() : -1; }
char* SlotSink::buffer() const { return state_ ? state_->buffers[state_->current].get() : nullptr; }

Status SlotSink::open() {
  if (sodium_init() < 0) return make_error(Errc::internal, "libsodium failed to initialise");
  auto state = std::make_unique<State>(options_);
  auto opened = open_slot(path_, name_, true);
  if (!opened) return std::unexpected(opened.error());
  state->slot = std::move(*opened);
  capacity_ = state->slot.size;
  for (auto& buffer : state->buffers) {
    buffer.reset(static_cast<char*>(std::aligned_alloc(alignment, write_chunk)));
    if (!buffer) return make_error(Errc::internal, "slot " + name_ + ": out of memory for the write buffers");
  }
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

Status SlotSink::write_buffer(std::size_t size, std::uint64_t bytes_in) {
  if (size == 0) return {};
  State& st = *state_;
  const std::uint64_t offset = written_ + st.pending_size;
  if (offset + size > capacity_) return std::unexpected(too_large(offset + size));
  if (auto s = drain(); !s) return s;
  const char* data = st.buffers[st.current].get();
  const int fd = st.slot.fd.get();
  st.pending_size = size;
  st.pending_bytes_in = bytes_in;
  st.pending = beside([&st, data, size, offset, fd, this]() -> Status {
    if (auto s = pwrite_all(fd, data, size, offset, name_, path_); !s) return s;
    // Write-behind: start this chunk's writeback now, and wait for the previous chunk's (started
    // one chunk ago) and drop its clean pages. The disk works while the next chunk decodes, the
    // final fdatasync has little left to do, and dirty pages stay at two chunks: a board with
    // little memory is not pushed into reclaim by a large image. Hints: errors show at fdatasync.
    (void)::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(size), SYNC_FILE_RANGE_WRITE);
    if (offset >= write_chunk) {
      const auto previous = static_cast<off_t>(offset - write_chunk);
      (void)::sync_file_range(fd, previous, static_cast<off_t>(write_chunk),
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      (void)::posix_fadvise(fd, previous, static_cast<off_t>(write_chunk), POSIX_FADV_DONTNEED);
    }
    st.sha.update(data, size);
    st.fingerprints.add(data, size);
    return {};
  });
  st.current ^= 1;
  return {};
}

Status SlotSink::drain() {
  State& st = *state_;
  if (!st.pending.valid()) return {};
  Status status = st.pending.get();
  const std::size_t size = std::exchange(st.pending_size, 0);
  if (!status) return status;
  return note_written(size, st.pending_bytes_in);
}

Status SlotSink::account(const char* data, std::size_t size, std::uint64_t bytes_in) {
  if (size == 0) return {};
  if (written_ + size > capacity_) return std::unexpected(too_large(written_ + size));
  if (auto s = drain(); !s) return s;
  State& st = *state_;
  st.sha.update(data, size);
  st.fingerprints.add(data, size);
  return note_written(size, bytes_in);
}

Status SlotSink::note_written(std::size_t size, std::uint64_t bytes_in) {
  State& st = *state_;
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
  if (auto s = drain(); !s) return std::unexpected(s.error());
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
  auto image_digest = st.sha.finish_hex();
  if (!image_digest) return std::unexpected(image_digest.error().with_context("slot " + name));
  result.image_sha256 = std::move(*image_digest);
  if (options_.expected_image_sha256 && lowercase(*options_.expected_image_sha256) != result.image_sha256)
    return make_error(Errc::digest_mismatch, "slot " + name + ": the decompressed image's sha256 is " +
                                                 result.image_sha256 + ", the release says " +
                                                 lowercase(*options_.expected_image_sha256));

  fault::point("slot:before-verify");
  if (options_.before_verify) options_.before_verify();

  // Read back from the device, not from the page cache: through O_DIRECT where the file system
  // takes it (a direct read also writes back any page still dirty in its range first), else after
  // dropping the now clean cached pages, which Linux honours for pages nobody maps. Each chunk is
  // checked and hashed beside the reading of the next.
  UniqueFd direct = open_direct(path);
  if (!direct) (void)::posix_fadvise(fd, 0, static_cast<off_t>(written), POSIX_FADV_DONTNEED);
  st.progress.start(SlotWriteProgress::Phase::verifying);
  Sha256 readback;
  std::future<std::optional<std::uint64_t>> checking;  // declared after what it uses: joins first
  auto collect = [&]() -> Status {
    if (!checking.valid()) return {};
    if (auto at = checking.get())
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(*at) +
                                      " (in the block of " + std::to_string(block_size) + " bytes from there): " +
                                      path.string() + " does not keep what was written; the storage may be failing");
    return {};
  };
  for (std::uint64_t offset = 0; offset < written;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(write_chunk, written - offset));
    char* out = st.buffers[st.current].get();
    Expected<std::size_t> got = 0;
    if (direct) {
      // Whole blocks (the buffer, the offsets and write_chunk are aligned); a file's end may come first.
      got = pread_full(direct.get(), out, (want + alignment - 1) / alignment * alignment, offset, name, path);
      if (!got) {
        // A device that refuses these direct reads (a block size above the alignment): read the
        // rest through the page cache, dropped first.
        direct = UniqueFd();
        (void)::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(written - offset), POSIX_FADV_DONTNEED);
      }
    }
    if (!direct) got = pread_full(fd, out, want, offset, name, path);
    if (!got) return std::unexpected(got.error());
    if (*got < want)
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(offset + *got) +
                                      ": the slot ends there (" + path.string() + " shrank while being written?)");
    if (auto s = collect(); !s) return std::unexpected(s.error());
    checking = beside([&st, &readback, out, offset, want]() -> std::optional<std::uint64_t> {
      if (auto at = st.fingerprints.first_difference(offset, out, want)) return at;
      readback.update(out, want);
      return std::nullopt;
    });
    st.current ^= 1;
    offset += want;
    st.progress.update(bytes_in, offset, image_size_, false);
  }
  if (auto s = collect(); !s) return std::unexpected(s.error());
  st.progress.update(bytes_in, written, image_size_, true);
  auto digest = readback.finish_hex();
  if (!digest) return std::unexpected(digest.error().with_context("slot " + name));
  if (*digest != result.image_sha256)
    return make_error(Errc::io, "slot " + name + ": read-back differs: sha256 " + *digest + " read, " +
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
