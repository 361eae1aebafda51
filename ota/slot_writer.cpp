#include "ota/slot_writer.hpp"

#include <fcntl.h>
#include <linux/fs.h>
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

#include "ota/slot_sink.hpp"

namespace eddy::ota {

namespace stdfs = std::filesystem;

namespace {

using namespace detail;

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

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

Expected<SlotWriteResult> write_slot_image(ByteStream& compressed, const stdfs::path& path,
                                           const SlotWriteOptions& options) {
  const std::string name = options.slot_name.empty() ? path.string() : options.slot_name;
  if (options.max_window_log < 10 || options.max_window_log > 31)
    return make_error(Errc::invalid_argument, "slot " + name + ": max_window_log " +  // zstd accepts 10 to 31
                                                  std::to_string(options.max_window_log) + " is out of range");
  SlotSink sink(path, options);
  if (auto s = sink.open(); !s) return std::unexpected(s.error());

  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return make_error(Errc::internal, "slot " + name + ": out of memory for the zstd decoder");
  if (std::size_t r = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, options.max_window_log); ZSTD_isError(r))
    return make_error(Errc::internal, std::string("zstd: ") + ZSTD_getErrorName(r));

  std::vector<char> input_buffer(ZSTD_DStreamInSize());
  char* out = sink.buffer();
  std::uint64_t bytes_in = 0;
  std::size_t fill = 0;
  bool header_seen = false;
  std::array<char, 18> header{};  // ZSTD_FRAMEHEADERSIZE_MAX: enough for any frame header
  std::size_t header_size = 0;
  std::size_t last_result = 1;  // 0 once a frame is complete and flushed

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
          if (auto s = sink.set_image_size(*size); !s) return std::unexpected(s.error());
        }
      }
    }
    ZSTD_inBuffer in{input_buffer.data(), *n, 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer output{out + fill, write_chunk - fill, 0};
      std::size_t r = ZSTD_decompressStream(dctx.get(), &output, &in);
      if (ZSTD_isError(r)) return std::unexpected(zstd_error(r, name, bytes_in, options.max_window_log));
      fill += output.pos;
      last_result = r;
      if (fill == write_chunk) {
        if (auto s = sink.write_buffer(fill, bytes_in); !s) return std::unexpected(s.error());
        out = sink.buffer();
        fill = 0;
      }
    }
  }
  if (bytes_in == 0)
    return make_error(Errc::invalid_argument, "slot " + name + ": the image is empty (not a zstd stream)");
  if (last_result != 0)
    return make_error(Errc::invalid_argument, "slot " + name + ": the image's zstd stream is truncated after " +
                                                  std::to_string(bytes_in) +
                                                  " compressed bytes (an incomplete download or upload?)");
  if (auto s = sink.write_buffer(fill, bytes_in); !s) return std::unexpected(s.error());
  return sink.finish(bytes_in);
}

}  // namespace eddy::ota
