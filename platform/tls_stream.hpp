// A server-side TLS stream over an Asio TCP socket, asynchronous on the socket's executor: the
// hub serves many connections from one io_context. It is used like an Asio socket:
// async_read_some / async_write_some take a buffer sequence and any completion token (a
// callback, asio::use_awaitable with as_tuple, ...) with the signature
// void(std::error_code, std::size_t); so do async_handshake and async_shutdown (size 0).
//
// Asio types appear here, so (like platform/event_loop_asio.hpp) include this header only from
// platform/ code (the hub's HTTP server) and its tests; everything else sees platform/tls.hpp.
//
// One operation at a time: start the next read, write, handshake or shutdown after the last
// one completed (HTTP/1.1 request then response); an overlapping one completes with
// asio::error::in_progress. Deadlines are the caller's, as with a socket: on a timer, call
// socket().close() (or destroy the stream) and the pending operation completes with
// asio::error::operation_aborted. The stream may be destroyed with an operation pending.
#pragma once

#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/dispatch.hpp>
#include <asio/associated_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <system_error>

#include "platform/tls.hpp"

namespace eddy::tls {

// std::error_code values for mbedTLS's (negative) error codes: value() is -code, message()
// is mbedTLS's text. A peer that closes (close_notify or TCP end) reads as asio::error::eof.
const std::error_category& mbedtls_category();

class TlsStream {
 public:
  using Socket = asio::ip::tcp::socket;
  using executor_type = Socket::executor_type;
  using Handler = std::move_only_function<void(std::error_code, std::size_t)>;

  // An accepted connection and the server's configuration (kept alive by the stream). The
  // socket gets TCP_NODELAY: every write is a whole TLS record.
  TlsStream(Socket socket, std::shared_ptr<const ServerConfig> config);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  executor_type get_executor();
  Socket& socket();  // the TCP socket underneath: remote_endpoint(), close() on a deadline

  template <typename Token>
  auto async_handshake(Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler) { start_handshake(wrap(std::move(handler))); }, token);
  }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, asio::mutable_buffer buffer) { start_read(buffer, wrap(std::move(handler))); }, token,
        first_buffer<asio::mutable_buffer>(buffers));
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, asio::const_buffer buffer) { start_write(buffer, wrap(std::move(handler))); }, token,
        first_buffer<asio::const_buffer>(buffers));
  }

  // Send close_notify (the TCP socket stays open: close it afterwards).
  template <typename Token>
  auto async_shutdown(Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler) { start_shutdown(wrap(std::move(handler))); }, token);
  }

  struct State;

 private:
  // The handler runs on its own associated executor (the stream's by default).
  template <typename H>
  Handler wrap(H handler) {
    auto executor = asio::get_associated_executor(handler, get_executor());
    return [handler = std::move(handler), executor](std::error_code ec, std::size_t n) mutable {
      asio::dispatch(executor, [handler = std::move(handler), ec, n]() mutable { handler(ec, n); });
    };
  }

  // Like an Asio socket's read_some/write_some: one buffer at a time, the first non-empty one.
  template <typename Buffer, typename Sequence>
  static Buffer first_buffer(const Sequence& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  void start_handshake(Handler handler);
  void start_read(asio::mutable_buffer buffer, Handler handler);
  void start_write(asio::const_buffer buffer, Handler handler);
  void start_shutdown(Handler handler);

  std::shared_ptr<State> state_;
};

}  // namespace eddy::tls
