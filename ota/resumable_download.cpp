#include "ota/resumable_download.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <thread>

#include "platform/http_client.hpp"
#include "platform/log.hpp"

namespace eddy::ota {

namespace {

struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::optional<std::uint64_t> total;  // "*" when the server does not know it
};

bool parse_number(std::string_view text, std::uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// "bytes 100-999/1000" (RFC 9110 section 14.4).
std::optional<ContentRange> parse_content_range(std::string_view text) {
  constexpr std::string_view unit = "bytes ";
  if (!text.starts_with(unit)) return std::nullopt;
  text.remove_prefix(unit.size());
  auto dash = text.find('-');
  auto slash = text.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return std::nullopt;
  ContentRange range;
  if (!parse_number(text.substr(0, dash), range.first) ||
      !parse_number(text.substr(dash + 1, slash - dash - 1), range.last) || range.last < range.first)
    return std::nullopt;
  auto total = text.substr(slash + 1);
  if (total != "*") {
    std::uint64_t value = 0;
    if (!parse_number(total, value)) return std::nullopt;
    range.total = value;
  }
  return range;
}

std::string header(const http::ResponseReader& reader, const std::string& name) {
  auto it = reader.headers().find(name);
  return it == reader.headers().end() ? std::string() : it->second;
}

// A failed attempt: retried (a drop, a stall, a 5xx) or final (a 404, a changed file).
struct AttemptError {
  Error error;
  bool retryable;
};
using Attempt = std::expected<void, AttemptError>;

std::unexpected<AttemptError> final_error(Errc code, std::string message) {
  return std::unexpected(AttemptError{Error{code, std::move(message)}, false});
}

bool retryable_code(Errc code) { return code == Errc::network || code == Errc::timeout; }

class ResumableStream final : public ByteStream {
 public:
  ResumableStream(std::string url, const ResumeOptions& options) : url_(std::move(url)), options_(options) {}

  // The first request, retried like any drop.
  Status start() {
    if (auto a = attempt(); !a) return recover(a.error());
    return {};
  }

  Expected<std::size_t> read(char* buffer, std::size_t size) override {
    if (failed_) return std::unexpected(*failed_);
    if (done_ || size == 0) return std::size_t{0};
    for (;;) {
      if (!reader_) {
        // recover() reconnected or failed for good.
        if (failed_) return std::unexpected(*failed_);
        return std::unexpected(Error{Errc::internal, "GET " + url_ + ": no connection"});
      }
      // Discard the part of a 200 body that was already returned (see attempt()).
      std::size_t want = skip_ > 0 ? static_cast<std::size_t>(std::min<std::uint64_t>(size, skip_)) : size;
      auto n = reader_->read_body(buffer, want);
      if (!n) {
        if (auto s = recover(AttemptError{n.error().with_context("GET " + url_), true}); !s)
          return std::unexpected(s.error());
        continue;
      }
      if (*n == 0) {
        if (skip_ > 0 || (total_ && delivered_ < *total_)) {
          std::string message = "GET " + url_ + ": the body ended at byte " + std::to_string(delivered_ - skip_);
          if (total_) message += " of " + std::to_string(*total_);
          if (auto s = recover(AttemptError{Error{Errc::network, message}, true}); !s)
            return std::unexpected(s.error());
          continue;
        }
        done_ = true;
        reader_.reset();
        return std::size_t{0};
      }
      if (skip_ > 0) {
        skip_ -= *n;
        continue;
      }
      delivered_ += *n;
      failures_ = 0;  // progress: the next drop gets the full retry budget again
      return *n;
    }
  }

 private:
  // One request from byte delivered_ on.
  Attempt attempt() {
    reader_.reset();
    skip_ = 0;
    http::RequestOptions request;
    request.timeout = options_.idle_timeout;
    const bool ranged = delivered_ > 0;
    if (ranged) {
      request.headers["Range"] = "bytes=" + std::to_string(delivered_) + "-";
      // If-Range: the server sends the rest only if the file is still the one we started
      // with, and the whole (changed) file otherwise, which is caught below.
      if (!etag_.empty())
        request.headers["If-Range"] = etag_;
      else if (!last_modified_.empty())
        request.headers["If-Range"] = last_modified_;
    }
    // http::open makes a new connection (new socket, new local address) every time.
    auto reader = http::open(url_, request);
    if (!reader) return std::unexpected(AttemptError{reader.error(), retryable_code(reader.error().code)});
    auto& r = **reader;
    const int status = r.status();
    const std::string what = "GET " + url_;
    std::string etag = header(r, "etag");
    if (etag.starts_with("W/")) etag.clear();  // weak validators are not allowed in If-Range
    std::string last_modified = header(r, "last-modified");

    if (status == 206) {
      if (!ranged) return final_error(Errc::network, what + ": HTTP 206 to a request without Range");
      auto range_text = header(r, "content-range");
      auto range = parse_content_range(range_text);
      if (!range || range->first != delivered_)
        return final_error(Errc::network, what + ": asked for bytes from " + std::to_string(delivered_) +
                                              ", the server answered Content-Range \"" + range_text +
                                              "\" (a broken server or proxy)");
      bool changed =
          (!etag_.empty() && !etag.empty() && etag != etag_) || (total_ && range->total && *total_ != *range->total);
      if (changed) return changed_error(etag, range->total);
      if (!total_) total_ = range->total;
    } else if (status == 200) {
      auto length = r.content_length();
      bool changed =
          (!etag_.empty() && !etag.empty() && etag != etag_) ||
          (etag_.empty() && !last_modified_.empty() && !last_modified.empty() && last_modified != last_modified_) ||
          (total_ && length && *total_ != *length);
      if (delivered_ == 0) {
        // Nothing returned yet: this is (again) the start of the download, of whichever file.
        total_ = length;
        etag_ = etag;
        last_modified_ = last_modified;
      } else if (changed) {
        return changed_error(etag, length);
      } else {
        // The same file, but the server ignores Range. The bytes already returned have gone
        // downstream (hashed, decoded, written to a slot) and a pull stream cannot take them
        // back, so restarting from zero would hand them over twice: read the whole body again
        // and drop its first delivered_ bytes. The SHA-256 over the stream still guards the
        // result if the server lied about the file being the same.
        skip_ = delivered_;
      }
    } else if (status / 100 == 5 || status == 408 || status == 429) {
      return std::unexpected(AttemptError{Error{Errc::network, what + ": HTTP " + std::to_string(status)}, true});
    } else {
      return final_error(Errc::network, what + ": HTTP " + std::to_string(status) +
                                            " (check the release's payload URL and the server)");
    }
    reader_ = std::move(*reader);
    return {};
  }

  std::unexpected<AttemptError> changed_error(const std::string& etag, std::optional<std::uint64_t> length) {
    std::string detail;
    if (!etag_.empty() && !etag.empty() && etag != etag_)
      detail = "ETag " + etag_ + ", now " + etag;
    else if (total_ && length && *total_ != *length)
      detail = std::to_string(*total_) + " bytes, now " + std::to_string(*length);
    else
      detail = "Last-Modified " + last_modified_ + " changed";
    return final_error(Errc::conflict, "GET " + url_ + ": the file changed on the server after " +
                                           std::to_string(delivered_) + " bytes were downloaded (" + detail +
                                           "); its parts cannot be joined: the download must start over");
  }

  // Reconnect after `failure` until an attempt succeeds or the retry budget is spent.
  Status recover(AttemptError failure) {
    reader_.reset();
    for (;;) {
      if (!failure.retryable) return fail(failure.error);
      if (failures_ >= options_.max_retries) {
        return fail(failure.error.with_context("giving up at byte " + std::to_string(delivered_) +
                                               (total_ ? " of " + std::to_string(*total_) : std::string()) + " after " +
                                               std::to_string(failures_) + " retries"));
      }
      ++failures_;
      auto backoff = options_.initial_backoff;
      for (int i = 1; i < failures_ && backoff < options_.max_backoff; ++i) backoff *= 2;
      backoff = std::min(backoff, options_.max_backoff);
      // "at byte 0" also when the first request failed: the same path, and a line to grep for.
      log::notice("resuming " + url_ + " at byte " + std::to_string(delivered_) + " (attempt " +
                  std::to_string(failures_) + " of " + std::to_string(options_.max_retries) + ", in " +
                  std::to_string(backoff.count()) + " ms) after: " + failure.error.message);
      std::this_thread::sleep_for(backoff);
      auto a = attempt();
      if (a) return {};
      failure = a.error();
    }
  }

  Status fail(Error error) {
    failed_ = error;
    return std::unexpected(std::move(error));
  }

  std::string url_;
  ResumeOptions options_;
  std::unique_ptr<http::ResponseReader> reader_;
  std::uint64_t delivered_ = 0;  // bytes returned by read()
  std::uint64_t skip_ = 0;       // bytes of the current 200 body still to drop
  std::optional<std::uint64_t> total_;
  std::string etag_;
  std::string last_modified_;
  int failures_ = 0;  // attempts in a row without a new byte
  bool done_ = false;
  std::optional<Error> failed_;
};

}  // namespace

Expected<std::unique_ptr<ByteStream>> open_resumable_url_stream(std::string_view url, const ResumeOptions& options) {
  if (auto parsed = http::parse_url(url); !parsed) return std::unexpected(parsed.error());
  auto stream = std::make_unique<ResumableStream>(std::string(url), options);
  if (auto s = stream->start(); !s) return std::unexpected(s.error());
  return std::unique_ptr<ByteStream>(std::move(stream));
}

}  // namespace eddy::ota
