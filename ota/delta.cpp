#include "ota/delta.hpp"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getCParams, ZSTD_d_stableOutBuffer, ZSTD_getFrameHeader
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "ota/sha256.hpp"
#include "ota/slot_sink.hpp"
#include "platform/fs.hpp"
#include "platform/unique_fd.hpp"

namespace eddy::ota {

namespace stdfs = std::filesystem;
using namespace detail;

namespace {

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

// A mapping of a file or device, unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* address, std::size_t size) : address_(address), size_(size) {}
  Mapping(Mapping&& other) noexcept
      : address_(std::exchange(other.address_, MAP_FAILED)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      reset();
      address_ = std::exchange(other.address_, MAP_FAILED);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }
  void reset() {
    if (address_ != MAP_FAILED) ::munmap(address_, size_);
    address_ = MAP_FAILED;
    size_ = 0;
  }
  char* data() const { return static_cast<char*>(address_); }
  std::size_t size() const { return size_; }
  // Drop the pages of [0, up_to) from this process's page tables: they stay in the page cache
  // (dirty ones are written back as usual) and fault in again if touched.
  void release(std::size_t up_to) const {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    up_to = std::min(up_to, size_) / page * page;
    if (up_to > 0) (void)::madvise(address_, up_to, MADV_DONTNEED);
  }

 private:
  void* address_ = MAP_FAILED;
  std::size_t size_ = 0;
};

Expected<Mapping> map(int fd, std::size_t size, bool writable, const std::string& what, const stdfs::path& path) {
  void* address =
      ::mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, writable ? MAP_SHARED : MAP_PRIVATE, fd, 0);
  if (address == MAP_FAILED) return std::unexpected(errno_error(errno, what + ": mmap", path.string()));
  return Mapping(address, size);
}

// The size of a regular file or block device open at `fd`.
Expected<std::uint64_t> size_of(int fd, const std::string& what, const stdfs::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::unexpected(errno_error(errno, what + ": stat", path.string()));
  if (S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0) return std::unexpected(errno_error(errno, what + ": seek to the end", path.string()));
    return static_cast<std::uint64_t>(end);
  }
  return make_error(Errc::invalid_argument,
                    what + ": " + path.string() + " is neither a regular file nor a block device");
}

Expected<std::string> sha256_of_prefix(int fd, std::uint64_t size, const std::string& what, const stdfs::path& path) {
  (void)::posix_fadvise(fd, 0, static_cast<off_t>(size), POSIX_FADV_SEQUENTIAL);
  std::vector<char> buffer(1u << 20);
  Sha256 sha;
  for (std::uint64_t offset = 0; offset < size;) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - offset));
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(
          errno_error(errno, what + ": read at byte " + std::to_string(offset) + " of", path.string()));
    }
    if (n == 0)
      return make_error(Errc::io,
                        what + ": " + path.string() + " ended at byte " + std::to_string(offset) + " while being read");
    sha.update(buffer.data(), static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  auto digest = sha.finish_hex();
  if (!digest) return std::unexpected(digest.error().with_context(what + " " + path.string()));
  return digest;
}

int ceil_log2(std::uint64_t value) { return value <= 1 ? 0 : static_cast<int>(std::bit_width(value - 1)); }

Error zstd_delta_error(std::size_t code, const std::string& name, std::uint64_t bytes_in) {
  return Error{Errc::invalid_argument, "slot " + name + ": the delta is corrupt near compressed byte " +
                                           std::to_string(bytes_in) + ": " + ZSTD_getErrorName(code) +
                                           " (a damaged download, or a delta made from another base image)"};
}

}  // namespace

Expected<std::string> slot_prefix_sha256(const stdfs::path& slot, std::uint64_t size) {
  const std::string what = "slot " + slot.string();
  UniqueFd fd(::open(slot.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::unexpected(errno_error(errno, what + ": open", slot.string()));
  auto length = size_of(fd.get(), what, slot);
  if (!length) return std::unexpected(length.error());
  if (*length < size)
    return make_error(Errc::too_large, what + " holds " + std::to_string(*length) + " bytes, fewer than the " +
                                           std::to_string(size) + " of the delta's base");
  return sha256_of_prefix(fd.get(), size, what, slot);
}

Expected<SlotWriteResult> write_slot_from_delta(ByteStream& delta, const stdfs::path& base,
                                                std::string_view base_sha256, std::uint64_t base_size,
                                                const stdfs::path& target_slot, const SlotWriteOptions& options) {
  const std::string name = options.slot_name.empty() ? target_slot.string() : options.slot_name;
  if (options.max_delta_window_log < 10 || options.max_delta_window_log > 31)
    return make_error(Errc::invalid_argument, "slot " + name + ": max_delta_window_log " +
                                                  std::to_string(options.max_delta_window_log) + " is out of range");
  if (base_size == 0 || base_size > SIZE_MAX)
    return make_error(Errc::invalid_argument, "delta base " + base.string() + ": the release gives a base size of " +
                                                  std::to_string(base_size));
  const std::string want_base = lowercase(std::string(base_sha256));

  // 1. The base: the active slot must hold exactly the image the delta was made from.
  const std::string base_what = "delta base " + base.string();
  UniqueFd base_fd(::open(base.c_str(), O_RDONLY | O_CLOEXEC));
  if (!base_fd) return std::unexpected(errno_error(errno, base_what + ": open", base.string()));
  auto base_total = size_of(base_fd.get(), base_what, base);
  if (!base_total) return std::unexpected(base_total.error());
  if (*base_total < base_size)
    return make_error(Errc::digest_mismatch, "delta base does not match: the active slot " + base.string() + " holds " +
                                                 mib_text(*base_total) + ", the delta's base image is " +
                                                 mib_text(base_size) + " (download the full image instead)");
  auto base_digest = sha256_of_prefix(base_fd.get(), base_size, base_what, base);
  if (!base_digest) return std::unexpected(base_digest.error());
  if (*base_digest != want_base)
    return make_error(Errc::digest_mismatch, "delta base does not match: the active slot " + base.string() +
                                                 " is not the delta's base image (" + "its first " +
                                                 std::to_string(base_size) + " bytes hash to sha256 " + *base_digest +
                                                 ", the release says " + want_base +
                                                 "); download the full image instead");
  auto base_map = map(base_fd.get(), static_cast<std::size_t>(base_size), false, base_what, base);
  if (!base_map) return std::unexpected(base_map.error());

  // 2. The delta's frame header: the image size (the output mapping's) and the window.
  std::vector<char> input(ZSTD_DStreamInSize());
  std::array<char, ZSTD_FRAMEHEADERSIZE_MAX> header{};
  std::size_t header_size = 0;
  std::uint64_t bytes_in = 0;
  std::size_t pending = 0;  // bytes of `input` read but not yet decoded
  ZSTD_frameHeader frame{};
  for (;;) {
    auto n = delta.read(input.data() + pending, input.size() - pending);
    if (!n) return std::unexpected(n.error().with_context("slot " + name));
    std::size_t take = std::min(*n, header.size() - header_size);
    std::memcpy(header.data() + header_size, input.data() + pending, take);
    header_size += take;
    pending += *n;
    bytes_in += *n;
    std::size_t r = ZSTD_getFrameHeader(&frame, header.data(), header_size);
    if (ZSTD_isError(r))
      return make_error(Errc::invalid_argument, "slot " + name + ": the delta is not a zstd frame (" +
                                                    ZSTD_getErrorName(r) + "): a damaged download?");
    if (r == 0) break;
    if (*n == 0 || pending == input.size())
      return make_error(Errc::invalid_argument, "slot " + name + ": the delta is truncated after " +
                                                    std::to_string(bytes_in) + " bytes, inside its zstd frame header");
  }
  if (frame.frameType != ZSTD_frame)
    return make_error(Errc::invalid_argument, "slot " + name +
                                                  ": the delta starts with a skippable frame, not the "
                                                  "zstd frame `zstd --patch-from` makes");
  if (frame.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN || frame.frameContentSize == 0)
    return make_error(Errc::invalid_argument,
                      "slot " + name +
                          ": the delta's frame header does not state the image size: make it "
                          "with `eddy release delta` or `zstd --patch-from=BASE NEW` from files");
  const std::uint64_t image_size = frame.frameContentSize;
  const int window_log = std::max(ZSTD_WINDOWLOG_MIN, ceil_log2(frame.windowSize));
  if (window_log > options.max_delta_window_log)
    return make_error(Errc::invalid_argument, "slot " + name + ": the delta asks for a window of 2^" +
                                                  std::to_string(window_log) + " bytes, more than the 2^" +
                                                  std::to_string(options.max_delta_window_log) +
                                                  " this device accepts (max_delta_window_log)");
  if (image_size > SIZE_MAX) return make_error(Errc::too_large, "slot " + name + ": the image is too large to map");

  // 3. The target, mapped for writing over the image's length.
  SlotSink sink(target_slot, options);
  if (auto s = sink.open(); !s) return std::unexpected(s.error());
  if (auto s = sink.set_image_size(image_size); !s) return std::unexpected(s.error());
  {
    struct stat st {};
    if (::fstat(sink.fd(), &st) == 0 && S_ISREG(st.st_mode)) {
      // Allocate a sparse file's blocks now: a full disk is an error here, not SIGBUS later.
      if (int err = ::posix_fallocate(sink.fd(), 0, static_cast<off_t>(image_size)); err != 0)
        return std::unexpected(
            errno_error(err, "slot " + name + ": allocate " + mib_text(image_size) + " in", target_slot.string()));
    }
  }
  auto out_map = map(sink.fd(), static_cast<std::size_t>(image_size), true, "slot " + name, target_slot);
  if (!out_map) return std::unexpected(out_map.error());

  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return make_error(Errc::internal, "slot " + name + ": out of memory for the zstd decoder");
  for (std::size_t r : {ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log),
                        // Decode into the mapping itself: the decoder keeps no window buffer.
                        ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_stableOutBuffer, 1),
                        ZSTD_DCtx_refPrefix(dctx.get(), base_map->data(), base_map->size())}) {
    if (ZSTD_isError(r)) return make_error(Errc::internal, std::string("zstd: ") + ZSTD_getErrorName(r));
  }

  // 4. Decode; account for each finished chunk, then drop the pages mapped so far.
  ZSTD_outBuffer output{out_map->data(), out_map->size(), 0};
  std::size_t accounted = 0;
  std::size_t last_result = 1;
  auto account = [&](bool all) -> Status {
    while (output.pos - accounted >= write_chunk || (all && output.pos > accounted)) {
      std::size_t size = std::min(write_chunk, output.pos - accounted);
      // The sink copies the chunk, writes it back (dirty pages do not pile up until the
      // fdatasync) and reads it back from the device beside the decoding.
      if (auto s = sink.account(out_map->data() + accounted, size, bytes_in); !s) return s;
      accounted += size;
      out_map->release(accounted);
      base_map->release(base_map->size());
    }
    return {};
  };
  bool trailing = false;
  for (;;) {
    ZSTD_inBuffer in{input.data(), pending, 0};
    while (in.pos < in.size) {
      if (last_result == 0) {
        trailing = true;
        break;
      }
      // A few bytes of a delta can stand for megabytes of image (a block of 128 KiB can be one
      // match): feed small slices so that pages are dropped every few MiB of output.
      ZSTD_inBuffer slice{static_cast<const char*>(in.src) + in.pos, std::min<std::size_t>(in.size - in.pos, 64), 0};
      std::size_t r = ZSTD_decompressStream(dctx.get(), &output, &slice);
      in.pos += slice.pos;
      if (ZSTD_isError(r)) return std::unexpected(zstd_delta_error(r, name, bytes_in));
      last_result = r;
      if (auto s = account(false); !s) return std::unexpected(s.error());
    }
    // Read to the end even after the frame: the stream checks the delta's size and digest there.
    auto n = delta.read(input.data(), input.size());
    if (!n) return std::unexpected(n.error().with_context("slot " + name));
    if (*n == 0) break;
    pending = *n;
    bytes_in += *n;
  }
  if (trailing)
    return make_error(Errc::invalid_argument, "slot " + name +
                                                  ": the delta has bytes after its zstd frame "
                                                  "(not a delta made by `zstd --patch-from`)");
  if (last_result != 0 || output.pos != image_size)
    return make_error(Errc::invalid_argument, "slot " + name + ": the delta is truncated after " +
                                                  std::to_string(bytes_in) +
                                                  " compressed bytes (an incomplete download or upload?)");
  if (auto s = account(true); !s) return std::unexpected(s.error());
  out_map->reset();
  base_map->reset();
  return sink.finish(bytes_in);
}

namespace {

struct InputImage {
  UniqueFd fd;
  Mapping mapping;
  std::uint64_t size = 0;
};

Expected<InputImage> open_image(const stdfs::path& path, const std::string& what) {
  InputImage image;
  image.fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!image.fd) return std::unexpected(errno_error(errno, what + ": open", path.string()));
  auto size = size_of(image.fd.get(), what, path);
  if (!size) return std::unexpected(size.error());
  if (*size == 0) return make_error(Errc::invalid_argument, what + " " + path.string() + " is empty");
  if (*size > SIZE_MAX) return make_error(Errc::too_large, what + " " + path.string() + " is too large to map");
  image.size = *size;
  auto mapping = map(image.fd.get(), static_cast<std::size_t>(*size), false, what, path);
  if (!mapping) return std::unexpected(mapping.error());
  image.mapping = std::move(*mapping);
  (void)::madvise(image.mapping.data(), image.mapping.size(), MADV_SEQUENTIAL);
  return image;
}

Expected<std::string> sha256_of(const Mapping& mapping) {
  return Sha256::hex_of(std::string_view(mapping.data(), mapping.size()));
}

}  // namespace

Expected<DeltaInfo> make_delta(const stdfs::path& base_image, const stdfs::path& new_image,
                               const stdfs::path& out_delta, int level) {
  if (level < 1 || level > ZSTD_maxCLevel())
    return make_error(Errc::invalid_argument, "delta: level " + std::to_string(level) + " is out of range (1 to " +
                                                  std::to_string(ZSTD_maxCLevel()) + ")");
  auto base = open_image(base_image, "delta base image");
  if (!base) return std::unexpected(base.error());
  auto image = open_image(new_image, "delta new image");
  if (!image) return std::unexpected(image.error());

  DeltaInfo info;
  info.level = level;
  info.base_size = base->size;
  info.image_size = image->size;
  auto base_sha256 = sha256_of(base->mapping);
  if (!base_sha256) return std::unexpected(base_sha256.error().with_context("delta base image " + base_image.string()));
  auto image_sha256 = sha256_of(image->mapping);
  if (!image_sha256) return std::unexpected(image_sha256.error().with_context("delta new image " + new_image.string()));
  info.base_sha256 = std::move(*base_sha256);
  info.image_sha256 = std::move(*image_sha256);

  // zstd's programs/fileio.c (FIO_adjustParamsForPatchFromMode): a window of 2^(highest bit of
  // the size + 1), and long-distance matching when that exceeds the level's search cycle. zstd
  // takes the new file's size; the larger of both also covers a base larger than the new image.
  const std::uint64_t larger = std::max(base->size, image->size);
  const int file_window_log = static_cast<int>(std::bit_width(larger));  // highbit + 1
  info.window_log = std::clamp(file_window_log, ZSTD_WINDOWLOG_MIN, ZSTD_WINDOWLOG_MAX);
  const ZSTD_compressionParameters params =
      ZSTD_getCParams(level, static_cast<unsigned long long>(image->size), static_cast<std::size_t>(base->size));
  const int cycle_log = static_cast<int>(params.chainLog) - (params.strategy >= ZSTD_btlazy2 ? 1 : 0);
  info.long_distance_matching = file_window_log > cycle_log;

  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  if (!cctx) return make_error(Errc::internal, "delta: out of memory for the zstd encoder");
  // One worker thread, as the zstd CLI compresses by default: the single-threaded encoder's
  // optimal parser (levels 16 to 19) finds far fewer matches in a large prefix (256 MiB: a delta
  // 1.77 times the CLI's); the worker's frame is a plain frame, applied the same way. A libzstd
  // built without threads refuses the parameter and compresses in this thread.
  (void)ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_nbWorkers, 1);
  for (std::size_t r :
       {ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level),
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_windowLog, info.window_log),
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_enableLongDistanceMatching, info.long_distance_matching ? 1 : 0),
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1),
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1),
        ZSTD_CCtx_setPledgedSrcSize(cctx.get(), image->size),
        ZSTD_CCtx_refPrefix(cctx.get(), base->mapping.data(), base->mapping.size())}) {
    if (ZSTD_isError(r)) return make_error(Errc::internal, std::string("delta: zstd: ") + ZSTD_getErrorName(r));
  }

  // Write beside the output and rename over it once complete and synced.
  stdfs::path temporary = out_delta;
  temporary += ".tmp";
  UniqueFd out(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out) return std::unexpected(errno_error(errno, "delta: create", temporary.string()));
  struct RemoveOnFailure {
    stdfs::path path;
    bool keep = false;
    ~RemoveOnFailure() {
      if (!keep) ::unlink(path.c_str());
    }
  } cleanup{temporary};

  std::vector<char> buffer(ZSTD_CStreamOutSize());
  Sha256 delta_sha;
  ZSTD_inBuffer in{image->mapping.data(), image->mapping.size(), 0};
  for (;;) {
    ZSTD_outBuffer output{buffer.data(), buffer.size(), 0};
    std::size_t remaining = ZSTD_compressStream2(cctx.get(), &output, &in, ZSTD_e_end);
    if (ZSTD_isError(remaining))
      return make_error(Errc::internal, "delta: zstd compression of " + new_image.string() +
                                            " failed: " + ZSTD_getErrorName(remaining));
    if (auto s = fs::write_all(out.get(), buffer.data(), output.pos, temporary); !s)
      return std::unexpected(s.error().with_context("delta"));
    delta_sha.update(buffer.data(), output.pos);
    info.delta_size += output.pos;
    if (remaining == 0) break;
  }
  auto delta_sha256 = delta_sha.finish_hex();
  if (!delta_sha256) return std::unexpected(delta_sha256.error().with_context("delta " + out_delta.string()));
  info.delta_sha256 = std::move(*delta_sha256);
  if (::fsync(out.get()) != 0) return std::unexpected(errno_error(errno, "delta: fsync", temporary.string()));
  if (out.close() != 0) return std::unexpected(errno_error(errno, "delta: close", temporary.string()));
  if (::rename(temporary.c_str(), out_delta.c_str()) != 0)
    return std::unexpected(errno_error(errno, "delta: rename " + temporary.string() + " to", out_delta.string()));
  cleanup.keep = true;
  stdfs::path folder = out_delta.parent_path().empty() ? stdfs::path(".") : out_delta.parent_path();
  UniqueFd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) (void)::fsync(dir.get());
  return info;
}

}  // namespace eddy::ota
