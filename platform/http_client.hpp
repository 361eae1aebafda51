// HTTP/1.1 client: payload downloads, health probes, (later) hub reports. Standalone Asio
// sockets where every operation has a deadline, and http-parser for responses. One request
// per connection ("Connection: close"); redirects are not followed.
//
// https:// runs TLS (platform/tls.hpp, mbedTLS) behind `Transport`: connect() picks the
// transport by the URL's scheme, and everything above it (request framing, parsing, limits)
// is shared.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::tls {
class SessionCache;
}

namespace eddy::http {

struct Url {
  std::string scheme;  // "http" or "https", lowercase
  std::string host;    // without brackets for IPv6 literals
  std::uint16_t port = 0;
  std::string target;  // path and query, "/" when empty
};

// Parse an absolute http(s) URL with http_parser_parse_url. User info ("user:pw@") is refused
// so that credentials never end up in logs; the fragment is dropped.
Expected<Url> parse_url(std::string_view url);

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names; repeated headers joined by ", "
  std::string body;
};

struct RequestOptions {
  std::string method = "GET";
  std::map<std::string, std::string> headers;
  std::string body;
  // request(): the deadline of the whole exchange. get_stream()/open(): the deadline of the
  // connect and of each read (an idle timeout), so a long download keeps going while bytes flow.
  std::chrono::milliseconds timeout{10000};
  std::size_t max_body = 1 << 20;  // request() only
  // https: the CA certificates (PEM) the server's certificate must chain to, and an optional
  // client certificate and key (both or neither) for servers that ask for one.
  std::filesystem::path ca_file = "/etc/ssl/certs/ca-certificates.crt";
  std::filesystem::path client_cert;
  std::filesystem::path client_key;
  // https: TLS session resumption (tls::ClientOptions::sessions and resume_only).
  tls::SessionCache* tls_sessions = nullptr;
  bool tls_resume_only = false;
};

// One exchange, body held in memory. Any status is a Response (a 404 is not an error here);
// a redirect is an Errc::network error naming its Location; a body beyond max_body is
// Errc::too_large; no complete response within `timeout` is Errc::timeout.
Expected<Response> request(std::string_view url, const RequestOptions& options = {});

// Streaming GET: the body goes to on_data chunk by chunk (never held whole); an error from
// on_data aborts the transfer and is returned. Returns the status, which is 2xx: any other
// status is an Errc::network error naming it and the URL.
Expected<int> get_stream(std::string_view url,
                         const std::function<Status(std::string_view chunk)>& on_data,
                         const RequestOptions& options = {});

// A response whose body the caller pulls (what get_stream and payload downloads build on).
// Bounded memory: at most one socket read (64 KiB) of body is buffered.
class ResponseReader {
 public:
  virtual ~ResponseReader() = default;
  virtual int status() const = 0;
  virtual const std::map<std::string, std::string>& headers() const = 0;
  // The announced Content-Length, if any (not for chunked or close-delimited bodies).
  virtual std::optional<std::uint64_t> content_length() const = 0;
  // Up to `size` bytes of the body; 0 at its end. A body that ends early (connection closed
  // before Content-Length or the last chunk) is an Errc::network "truncated" error.
  virtual Expected<std::size_t> read_body(char* buffer, std::size_t size) = 0;
};

// Send the request and read the status line and headers; the body is left for read_body().
// options.timeout is the idle timeout; options.max_body is not applied here.
Expected<std::unique_ptr<ResponseReader>> open(std::string_view url, const RequestOptions& options = {});

// The byte transport under HTTP: a connected socket, or a TLS session over one.
class Transport {
 public:
  virtual ~Transport() = default;
  // Up to `size` bytes; 0 when the peer closed. No byte within `timeout` is Errc::timeout.
  virtual Expected<std::size_t> read_some(char* buffer, std::size_t size, std::chrono::milliseconds timeout) = 0;
  virtual Status write_all(std::string_view data, std::chrono::milliseconds timeout) = 0;
};

// Resolve and connect within `timeout` with the transport the scheme asks for; for https the
// TLS handshake too (within the same `timeout`), with options.ca_file / client_cert / client_key
// (tls::client_handshake tells its errors). Name resolution runs getaddrinfo, whose own
// timeout (resolv.conf) can stretch the deadline for names that are not numeric addresses.
Expected<std::unique_ptr<Transport>> connect(const Url& url, std::chrono::milliseconds timeout,
                                             const RequestOptions& options = {});

// Open and close a TCP connection to "host:port" ("[::1]:80" for IPv6) within `timeout`: the
// TCP health probe. Errors: Errc::invalid_argument (bad address), Errc::network, Errc::timeout,
// each naming the address.
Status check_tcp(std::string_view address, std::chrono::milliseconds timeout);

}  // namespace eddy::http
