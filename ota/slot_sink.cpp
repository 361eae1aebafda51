#include "ota/slot_sink.hpp"

#include <fcntl.h>
#include <linux/fs.h>
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

constexpr std::size_t alignment = 4096;

// The chunks in flight: the caller fills one while the one before is written and hashed; the
// writer then waits for the writeback of the chunk `sync_lag` before the one it wrote, and the
// chunk before that is read back from the device. Their buffers form a ring.
constexpr std::uint64_t sync_lag = 1;
constexpr std::size_t ring_size = sync_lag + 3;

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<char, FreeDeleter>;

// Progress at most once per `every`, plus a last report at the end of a phase.
class ProgressReporter {
 public:
  ProgressReporter(const SlotProgressCallback& callback, std::chrono::milliseconds every)
      : callback_(callback), every_(every) {}

  // `done_before`: bytes_out already reached when the phase starts (the read-back's tail starts
  // where the read-back beside the writing left it); the rate counts this phase's bytes only.
  void start(SlotWriteProgress::Phase phase, std::uint64_t done_before = 0) {
    report_.phase = phase;
    report_.bytes_out = 0;
    done_before_ = done_before;
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
    report_.bytes_per_second = seconds > 0 ? static_cast<double>(bytes_out - std::min(bytes_out, done_before_)) / seconds : 0;
    callback_(report_);
  }

 private:
  const SlotProgressCallback& callback_;
  std::chrono::milliseconds every_;
  SlotWriteProgress report_;
  std::uint64_t done_before_ = 0;
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

// Runs `job` on a thread of its own, so that the caller's next step (decoding the next chunk)
// overlaps it; inline when no thread can be made.
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

// One chunk of the image on its way: its bytes stay here until they have been read back.
struct Chunk {
  AlignedBuffer data;
  std::uint64_t offset = 0;
  std::size_t size = 0;
};

// Wait until the chunk's bytes are on the device, then drop its clean pages from the cache.
Status sync_chunk(int fd, const Chunk& chunk, const std::string& name, const stdfs::path& path) {
  const auto offset = static_cast<off_t>(chunk.offset);
  const auto size = static_cast<off_t>(chunk.size);
  if (::sync_file_range(fd, offset, size,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
    const int err = errno;
    // Not offered here (some file systems): fdatasync syncs all that was written so far instead.
    if (err != EINVAL && err != ESPIPE && err != ENOSYS)
      return std::unexpected(errno_error(err, "slot " + name + ": write back bytes " + std::to_string(chunk.offset) +
                                                  " to " + std::to_string(chunk.offset + chunk.size) + " of",
                                         path.string()));
    if (::fdatasync(fd) != 0) return std::unexpected(errno_error(errno, "slot " + name + ": fdatasync", path.string()));
  }
  (void)::posix_fadvise(fd, offset, size, POSIX_FADV_DONTNEED);
  return {};
}

}  // namespace

namespace detail {

struct SlotSink::State {
  OpenSlot slot;
  // The read-back's descriptor (O_DIRECT); empty where the file system refuses direct reads.
  UniqueFd direct;
  // Chunk k (counted from 0) is in ring[k % ring_size]; the read-back reads into read_buffer.
  std::array<Chunk, ring_size> ring;
  AlignedBuffer read_buffer;
  std::uint64_t handed_over = 0;  // chunks handed over: the next one's number
  std::uint64_t end = 0;          // bytes handed over
  // The chunk being written beside the caller (the last one handed over).
  std::future<Status> writing;
  std::uint64_t writing_bytes_in = 0;
  // The chunk being read back beside the caller (read_back - 1), and the bytes compared before it.
  std::future<Status> reading;
  std::uint64_t read_back = 0;
  std::uint64_t read_back_bytes = 0;
  Sha256 sha;
  ProgressReporter progress;
  bool passed_25 = false;
  bool passed_50 = false;
  explicit State(const SlotWriteOptions& options) : progress(options.progress, options.progress_every) {}
  // Chunks still being written or read back use the members above: they end before they go.
  ~State() {
    if (writing.valid()) writing.wait();
    if (reading.valid()) reading.wait();
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // Write chunk k (unless its bytes are in the slot already), hash it, and wait for the chunk
  // `sync_lag` before it to reach the device. Write-behind: this chunk's writeback starts at once
  // and runs while it is hashed and the next one decodes, the final fdatasync has little left to
  // do, and dirty pages stay at a few chunks, so a board with little memory is not pushed into
  // reclaim by a large image.
  Status write_and_sync(std::uint64_t k, bool already_in_slot, const std::string& name, const stdfs::path& path) {
    const Chunk& chunk = ring[k % ring_size];
    const int fd = slot.fd.get();
    if (!already_in_slot) {
      if (auto s = pwrite_all(fd, chunk.data.get(), chunk.size, chunk.offset, name, path); !s) return s;
    }
    // A hint: errors show when this chunk is waited for, one chunk later or at fdatasync.
    (void)::sync_file_range(fd, static_cast<off_t>(chunk.offset), static_cast<off_t>(chunk.size),
                            SYNC_FILE_RANGE_WRITE);
    sha.update(chunk.data.get(), chunk.size);
    if (k < sync_lag) return {};
    return sync_chunk(fd, ring[(k - sync_lag) % ring_size], name, path);
  }

  // Read chunk k back from the device (it has been synced) and compare it with what was written:
  // byte for byte with the bytes that were hashed and written, which the ring still holds.
  Status read_back_chunk(std::uint64_t k, const SlotWriteOptions& options, const std::string& name,
                         const stdfs::path& path) {
    const Chunk& chunk = ring[k % ring_size];
    if (options.before_read_back) options.before_read_back(chunk.offset, chunk.size);
    char* out = read_buffer.get();
    Expected<std::size_t> got = 0;
    if (direct) {
      // Whole blocks (the buffer, the offsets and write_chunk are aligned); a file's end may come
      // first. A direct read also writes back any page still dirty in its range first.
      got = pread_full(direct.get(), out, (chunk.size + alignment - 1) / alignment * alignment, chunk.offset, name,
                       path);
      // A device that refuses these direct reads (a block size above the alignment): read the
      // rest through the page cache.
      if (!got) direct = UniqueFd();
    }
    if (!direct) {
      // The chunk is synced, so its pages are clean: Linux drops them (nobody maps them now), and
      // the read goes to the device.
      (void)::posix_fadvise(slot.fd.get(), static_cast<off_t>(chunk.offset), static_cast<off_t>(chunk.size),
                            POSIX_FADV_DONTNEED);
      got = pread_full(slot.fd.get(), out, chunk.size, chunk.offset, name, path);
    }
    if (!got) return std::unexpected(got.error());
    if (*got < chunk.size)
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(chunk.offset + *got) +
                                      ": the slot ends there (" + path.string() + " shrank while being written?)");
    const char* written = chunk.data.get();
    if (std::memcmp(written, out, chunk.size) != 0) {
      const auto at = static_cast<std::uint64_t>(std::mismatch(written, written + chunk.size, out).first - written);
      return make_error(Errc::io, "slot " + name + ": read-back differs at byte " + std::to_string(chunk.offset + at) +
                                      ": " + path.string() +
                                      " does not keep what was written; the storage may be failing (check it, "
                                      "or replace it)");
    }
    return {};
  }
};

SlotSink::SlotSink(const stdfs::path& slot, const SlotWriteOptions& options)
    : path_(slot), options_(options), name_(options.slot_name.empty() ? slot.string() : options.slot_name) {}
SlotSink::~SlotSink() = default;

int SlotSink::fd() const { return state_ ? state_->slot.fd.get() : -1; }
char* SlotSink::buffer() const { return state_ ? state_->ring[state_->handed_over % ring_size].data.get() : nullptr; }

Status SlotSink::open() {
  auto state = std::make_unique<State>(options_);
  auto opened = open_slot(path_, name_, true);
  if (!opened) return std::unexpected(opened.error());
  state->slot = std::move(*opened);
  capacity_ = state->slot.size;
  auto allocate = [&](AlignedBuffer& buffer) {
    buffer.reset(static_cast<char*>(std::aligned_alloc(alignment, write_chunk)));
    return buffer != nullptr;
  };
  for (auto& chunk : state->ring) {
    if (!allocate(chunk.data)) return make_error(Errc::internal, "slot " + name_ + ": out of memory for the write buffers");
  }
  if (!allocate(state->read_buffer))
    return make_error(Errc::internal, "slot " + name_ + ": out of memory for the read-back buffer");
  state->direct = open_direct(path_);
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

Status SlotSink::write_buffer(std::size_t size, std::uint64_t bytes_in) { return hand_over(size, bytes_in, false); }

Status SlotSink::account(const char* data, std::size_t size, std::uint64_t bytes_in) {
  for (std::size_t at = 0; at < size;) {
    const std::size_t n = std::min(write_chunk, size - at);
    std::memcpy(buffer(), data + at, n);
    if (auto s = hand_over(n, bytes_in, true); !s) return s;
    at += n;
  }
  return {};
}

Status SlotSink::hand_over(std::size_t size, std::uint64_t bytes_in, bool already_in_slot) {
  if (size == 0) return {};
  State& st = *state_;
  if (st.end + size > capacity_) return std::unexpected(too_large(st.end + size));
  if (auto s = drain(); !s) return s;
  if (auto s = read_back_synced(); !s) return s;
  const std::uint64_t k = st.handed_over++;
  Chunk& chunk = st.ring[k % ring_size];
  chunk.offset = st.end;
  chunk.size = size;
  st.end += size;
  st.writing_bytes_in = bytes_in;
  st.writing = beside([&st, k, already_in_slot, this] { return st.write_and_sync(k, already_in_slot, name_, path_); });
  return {};
}

Status SlotSink::drain() {
  State& st = *state_;
  if (!st.writing.valid()) return {};
  Status status = st.writing.get();
  if (!status) return status;
  return note_written(st.ring[(st.handed_over - 1) % ring_size].size, st.writing_bytes_in);
}

Status SlotSink::read_back_synced() {
  State& st = *state_;
  // Every chunk handed over has been written (drain()), and the chunks up to `sync_lag` before
  // the last one are on the device.
  const std::uint64_t synced = st.handed_over > sync_lag ? st.handed_over - sync_lag : 0;
  while (st.read_back < synced) {
    if (st.reading.valid()) {
      if (auto s = st.reading.get(); !s) return s;
      st.read_back_bytes += st.ring[(st.read_back - 1) % ring_size].size;
    }
    const std::uint64_t k = st.read_back++;
    st.reading = beside([&st, k, this] { return st.read_back_chunk(k, options_, name_, path_); });
  }
  return {};
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

  // Everything is on the device now: the chunks the read-back beside the writing has not reached
  // yet (the last ones) are read back here.
  fault::point("slot:before-verify");
  if (st.reading.valid()) {
    if (auto s = st.reading.get(); !s) return std::unexpected(s.error());
    st.read_back_bytes += st.ring[(st.read_back - 1) % ring_size].size;
  }
  st.progress.start(SlotWriteProgress::Phase::verifying, st.read_back_bytes);
  while (st.read_back < st.handed_over) {
    const std::uint64_t k = st.read_back++;
    if (auto s = st.read_back_chunk(k, options_, name, path); !s) return std::unexpected(s.error());
    st.read_back_bytes += st.ring[k % ring_size].size;
    st.progress.update(bytes_in, st.read_back_bytes, image_size_, false);
  }
  st.progress.update(bytes_in, st.read_back_bytes, image_size_, true);
  if (st.read_back_bytes != written)
    return make_error(Errc::internal, "slot " + name + ": " + std::to_string(st.read_back_bytes) +
                                          " bytes were read back of the " + std::to_string(written) +
                                          " written (a bug: the image is not verified)");
  return result;
}

}  // namespace detail

Expected<std::uint64_t> slot_size(const stdfs::path& slot) {
  auto open = open_slot(slot, slot.string(), false);
  if (!open) return std::unexpected(open.error());
  return open->size;
}

}  // namespace eddy::ota
