#include "ota/payload.hpp"

#include <algorithm>
#include <cctype>

#include "ota/sha256.hpp"
#include "platform/http_client.hpp"

namespace eddy::ota {

namespace {

bool is_sha256_hex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

struct VerifyingStream::Hasher {
  Sha256 sha;
};

VerifyingStream::VerifyingStream(std::unique_ptr<ByteStream> inner, std::string expected_sha256,
                                 std::uint64_t expected_size, std::string what)
    : inner_(std::move(inner)),
      hasher_(std::make_unique<Hasher>()),
      expected_sha256_(lowercase(std::move(expected_sha256))),
      expected_size_(expected_size),
      what_(std::move(what)) {}

VerifyingStream::~VerifyingStream() = default;

void VerifyingStream::set_progress(ProgressCallback callback, std::chrono::milliseconds every) {
  progress_ = std::move(callback);
  progress_every_ = every;
  last_progress_ = std::chrono::steady_clock::now();
}

Error VerifyingStream::fail(Error error) {
  failed_ = error;
  return error;
}

Expected<std::size_t> VerifyingStream::read(char* buffer, std::size_t size) {
  if (failed_) return std::unexpected(*failed_);
  if (verified_ || size == 0) return std::size_t{0};
  const std::string name = "payload " + what_;
  if (!is_sha256_hex(expected_sha256_))
    return std::unexpected(fail(Error{Errc::invalid_argument, name + ": the release's sha256 \"" + expected_sha256_ +
                                                                  "\" is not 64 hexadecimal digits"}));

  // Ask for at most one byte past the limit: enough to tell "too large" without reading on.
  const std::uint64_t allowed = expected_size_ - bytes_read_ + 1;
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size, allowed));
  auto n = inner_->read(buffer, want);
  if (!n) return std::unexpected(fail(n.error().with_context(name)));

  if (*n == 0) {
    if (bytes_read_ < expected_size_)
      return std::unexpected(fail(Error{Errc::io, name + ": truncated: got " + std::to_string(bytes_read_) + " of " +
                                                      std::to_string(expected_size_) + " bytes"}));
    auto digest = hasher_->sha.finish_hex();
    if (!digest) return std::unexpected(fail(digest.error().with_context(name)));
    const std::string& got = *digest;
    if (got != expected_sha256_)
      return std::unexpected(fail(Error{Errc::digest_mismatch, name + ": sha256 is " + got + ", the release says " +
                                                                   expected_sha256_}));
    verified_ = true;
    if (progress_) progress_(bytes_read_, expected_size_);
    return std::size_t{0};
  }

  bytes_read_ += *n;
  if (bytes_read_ > expected_size_)
    return std::unexpected(fail(Error{Errc::too_large, name + ": larger than the " + std::to_string(expected_size_) +
                                                           " bytes the release declares"}));
  hasher_->sha.update(buffer, *n);

  if (progress_) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_progress_ >= progress_every_) {
      last_progress_ = now;
      progress_(bytes_read_, expected_size_);
    }
  }
  return *n;
}

namespace {

class UrlStream final : public ByteStream {
 public:
  UrlStream(std::string url, std::unique_ptr<http::ResponseReader> reader)
      : url_(std::move(url)), reader_(std::move(reader)) {}

  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    auto n = reader_->read_body(buffer, size);
    if (!n) return std::unexpected(n.error().with_context("GET " + url_));
    return n;
  }

 private:
  std::string url_;
  std::unique_ptr<http::ResponseReader> reader_;
};

}  // namespace

Expected<std::unique_ptr<ByteStream>> open_url_stream(std::string_view url, std::chrono::milliseconds idle_timeout) {
  http::RequestOptions options;
  options.timeout = idle_timeout;
  auto reader = http::open(url, options);
  if (!reader) return std::unexpected(reader.error());
  int status = (*reader)->status();
  if (status / 100 != 2)
    return make_error(Errc::network, "GET " + std::string(url) + ": HTTP " + std::to_string(status) +
                                         " (check the release's payload URL and the server)");
  return std::unique_ptr<ByteStream>(std::make_unique<UrlStream>(std::string(url), std::move(*reader)));
}

}  // namespace eddy::ota
