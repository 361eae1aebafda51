// An HTTP download that survives a dropped or stalled connection: it reconnects (a fresh socket
// each time, so a new local address after the link came back is fine) and continues from the
// byte it had reached with a Range request, instead of starting a large image over.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>

#include "ota/byte_stream.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

struct ResumeOptions {
  // No byte for this long (connect, headers or body) counts as a dropped connection.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  // Reconnects in a row that bring no new byte before giving up; the count starts again each
  // time a connection delivers body bytes, so a long download over a flaky link keeps going.
  int max_retries = 8;
  // Wait before reconnect k: initial_backoff * 2^(k-1), at most max_backoff.
  std::chrono::milliseconds initial_backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(60)};
};

// GET `url` (http://) as a pull stream. The first request happens here: an HTTP status other
// than 2xx is an Errc::network error naming it (4xx at once; 5xx and connection failures are
// retried like a drop). Mid-body, a read error, an idle timeout or an early end of the body
// makes it reconnect with `Range: bytes=N-` and `If-Range` (the strong ETag, or Last-Modified)
// and continue at byte N: a 206 must start at N; a 200 for the same file is read from byte N
// on; a 200 for a changed file (another ETag or Last-Modified, or another length) restarts
// from zero if no byte was returned yet, and is otherwise an Errc::conflict error (bytes of two
// files are never stitched together). Each resume is logged: "resuming <url> at byte N
// (attempt k of max)". Giving up returns the last error with the byte reached.
Expected<std::unique_ptr<ByteStream>> open_resumable_url_stream(std::string_view url,
                                                                const ResumeOptions& options = {});

}  // namespace eddy::ota
