// HTTP/1.1 server on the daemon's EventLoop (standalone Asio underneath) with http-parser for
// requests, plain or TLS (platform/tls_stream.hpp, mbedTLS): the transport of eddy-hub.
//
// Everything runs on the EventLoop's thread with asynchronous operations (no thread per
// connection). Connections are persistent (HTTP/1.1 keep-alive; HTTP/1.0 and "Connection:
// close" are honoured); pipelined requests are answered in order, one handler call at a time
// per connection. Request bodies may be Content-Length or chunked; "Expect: 100-continue" is
// answered before the body is read.
//
// Errors are answered with a status and the connection closed: a malformed request is 400, a
// body over max_body is 413 (told from Content-Length before the body is read), headers over
// max_header_bytes are 431, an HTTP version other than 1.x is 505. A client that does not send
// a whole request head within header_timeout (slowloris), or stays silent for idle_timeout
// between requests (or while sending a body, or not reading a response), is disconnected.
// Beyond max_connections, new connections are refused: plain ones get a 503, TLS ones are
// closed before the handshake (which is what costs CPU).
//
// Responses always carry Date and Content-Length (except 1xx, 204 and 304, which have no
// body); a HEAD response has the Content-Length of the body it does not send.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "platform/error.hpp"
#include "platform/event_loop.hpp"

namespace eddy::http {

struct ServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: "/v1/reports?x=1"
  std::string path;    // "/v1/reports" (not percent-decoded)
  std::string query;   // "x=1" (without '?'), empty when none
  std::map<std::string, std::string> headers;  // lowercase names; repeated headers joined by ", "
  std::string body;    // de-chunked
  std::string peer;    // "ip:port" of the client
};

struct ServerResponse {
  int status = 200;
  // Content-Length, Date, Connection and Transfer-Encoding are the server's: given here they
  // are ignored. Names are sent as given.
  std::map<std::string, std::string> headers;
  std::string body;
};

// Called on the loop thread for each request. `respond` may be called then or later, from any
// thread (it posts back to the loop); calls after the first are ignored. If every copy of
// `respond` is dropped without a call, the client gets a 500. A handler that throws is a bug:
// the exception is logged and the client gets a 500.
using RequestHandler = std::function<void(ServerRequest, std::function<void(ServerResponse)> respond)>;

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port ("[::1]:8443" for IPv6); port 0 = OS-chosen
  // PEM certificate chain and key: both for HTTPS, neither for plain HTTP.
  std::filesystem::path tls_cert{}, tls_key{};
  std::size_t max_body = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;  // request line and headers
  // From a connection's accept (including the TLS handshake) or a request's first byte, until
  // its head is complete.
  std::chrono::milliseconds header_timeout{10000};
  // Between requests on a persistent connection, and for each read of a body or write of a
  // response.
  std::chrono::milliseconds idle_timeout{60000};
  std::size_t max_connections = 10000;
};

class Server {
 public:
  // Bind and listen at once (the port is known on return); connections are served while the
  // loop runs. Errors: Errc::invalid_argument for a bad listen address, options or unreadable
  // certificate/key (the message names it); Errc::network when the address cannot be bound.
  static Expected<std::unique_ptr<Server>> start(EventLoop& loop, ServerOptions options, RequestHandler handler);

  std::uint16_t port() const;
  // Connections open now (for tests and metrics). Loop thread only.
  std::size_t connection_count() const;

  // Stops accepting and closes every connection (responses not yet sent are dropped). Call
  // it on the loop thread, or while the loop is not running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  struct State;

 private:
  explicit Server(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// "Not Found" for 404, ...; "Unknown" for a status it does not know.
std::string_view reason_phrase(int status);

}  // namespace eddy::http
