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
