// The payload pipeline's first links: bytes from where the release says (an HTTP download,
// a Git blob) pass through a size limit and SHA-256 before anything downstream trusts them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ota/byte_stream.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

// Bytes so far and the expected total, for `eddy status` and the log.
using ProgressCallback = std::function<void(std::uint64_t done, std::uint64_t total)>;

// Passes bytes through, counting them and hashing them with SHA-256. The release's size is the
// limit: a byte beyond it is Errc::too_large at once, and the inner stream is never asked for
// more than limit + 1 bytes. At the end of the inner stream: fewer bytes than the size is an
// Errc::io "truncated" error, another digest is Errc::digest_mismatch. Errors are sticky: every
// read after one returns it again. `what` names the payload in messages ("sensor-app 1.4.2").
class VerifyingStream final : public ByteStream {
 public:
  VerifyingStream(std::unique_ptr<ByteStream> inner, std::string expected_sha256, std::uint64_t expected_size,
                  std::string what);
  ~VerifyingStream() override;
  VerifyingStream(const VerifyingStream&) = delete;
  VerifyingStream& operator=(const VerifyingStream&) = delete;

  Expected<std::size_t> read(char* buffer, std::size_t size) override;

  std::uint64_t bytes_read() const { return bytes_read_; }
  // Called at most once per `every` while bytes flow, and once more when the payload verified.
  void set_progress(ProgressCallback callback, std::chrono::milliseconds every = std::chrono::milliseconds(250));

 private:
  Error fail(Error error);

  struct Hasher;
  std::unique_ptr<ByteStream> inner_;
  std::unique_ptr<Hasher> hasher_;
  std::string expected_sha256_;
  std::uint64_t expected_size_;
  std::string what_;
  std::uint64_t bytes_read_ = 0;
  bool verified_ = false;
  std::optional<Error> failed_;
  ProgressCallback progress_;
  std::chrono::milliseconds progress_every_{250};
  std::chrono::steady_clock::time_point last_progress_{};
};

// An HTTP(S) download as a pull stream: a non-2xx status, a refused connection or no byte for
// `idle_timeout` is an error naming the URL. Memory stays bounded (one 64 KiB socket read is
// buffered); a body cut short of its Content-Length is an Errc::network "truncated" error.
Expected<std::unique_ptr<ByteStream>> open_url_stream(std::string_view url, std::chrono::milliseconds idle_timeout);

}  // namespace eddy::ota
