#include "platform/tls_stream.hpp"

#include <asio/post.hpp>
#include <asio/write.hpp>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "platform/tls_mbedtls.hpp"

namespace eddy::tls {

namespace {

class MbedtlsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mbedtls"; }
  std::string message(int value) const override { return describe_mbedtls_error(-value); }
};

std::error_code mbedtls_error(int code) { return {-code, mbedtls_category()}; }

constexpr std::size_t socket_read_size = 16 * 1024 + 512;  // one full TLS record and its header

}  // namespace

const std::error_category& mbedtls_category() {
  static const MbedtlsCategory category;
  return category;
}

// Everything a connection needs, owned by a shared_ptr that pending socket operations hold,
// so that destroying the TlsStream mid-operation is safe: its socket is closed and the
// pending operation completes with operation_aborted.
//
// mbedTLS runs over memory: its receive callback hands out bytes the socket already read (or
// WANT_READ), its send callback appends to `out`. After each mbedTLS call the driver flushes
// `out` to the socket, reads more on WANT_READ, or completes the operation.
struct TlsStream::State : std::enable_shared_from_this<TlsStream::State> {
  enum class Kind { handshake, read, write, shutdown };

  State(Socket s, std::shared_ptr<const ServerConfig> c) : socket(std::move(s)), config(std::move(c)) {
    mbedtls_ssl_init(&ssl);
    setup_result = mbedtls_ssl_setup(&ssl, &config->impl().conf);
    mbedtls_ssl_set_bio(&ssl, this, &State::bio_send, &State::bio_recv, nullptr);
  }
  ~State() { mbedtls_ssl_free(&ssl); }

  static int bio_send(void* context, const unsigned char* data, std::size_t size) {
    auto& self = *static_cast<State*>(context);
    self.out.insert(self.out.end(), data, data + size);
    return static_cast<int>(size);
  }

  static int bio_recv(void* context, unsigned char* buffer, std::size_t size) {
    auto& self = *static_cast<State*>(context);
    if (self.in_begin == self.in_end) return self.socket_eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
    std::size_t n = std::min(size, self.in_end - self.in_begin);
    std::memcpy(buffer, self.in.data() + self.in_begin, n);
    self.in_begin += n;
    return static_cast<int>(n);
  }

  void start(Kind k, void* data, std::size_t size, Handler h) {
    if (handler) {
      post(std::move(h), asio::error::in_progress, 0);
      return;
    }
    if (setup_result != 0) {
      post(std::move(h), mbedtls_error(setup_result), 0);
      return;
    }
    if ((k == Kind::read || k == Kind::write) && size == 0) {
      post(std::move(h), {}, 0);
      return;
    }
    kind = k;
    buffer = data;
    buffer_size = size;
    handler = std::move(h);
    initiating = true;
    step();
    initiating = false;
  }

  // One call into mbedTLS, then flush, read or complete.
  void step() {
    int r = 0;
    switch (kind) {
      case Kind::handshake:
        r = mbedtls_ssl_handshake(&ssl);
        break;
      case Kind::read:
        r = mbedtls_ssl_read(&ssl, static_cast<unsigned char*>(buffer), buffer_size);
        break;
      case Kind::write:
        r = mbedtls_ssl_write(&ssl, static_cast<const unsigned char*>(buffer), buffer_size);
        break;
      case Kind::shutdown:
        r = mbedtls_ssl_close_notify(&ssl);
        break;
    }
    bool again = r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE;
    if (!out.empty()) {
      flush(again ? std::optional<int>() : std::optional<int>(r));
      return;
    }
    if (r == MBEDTLS_ERR_SSL_WANT_READ) {
      read_socket();
      return;
    }
    if (again) {  // WANT_WRITE with nothing to write cannot happen: the send callback never refuses
      finish(mbedtls_error(r), 0);
      return;
    }
    complete(r);
  }

  // Write all of `out`, then continue (`result` empty) or complete with `result`.
  void flush(std::optional<int> result) {
    writing.swap(out);
    out.clear();
    asio::async_write(socket, asio::buffer(writing),
                      [self = shared_from_this(), result](std::error_code ec, std::size_t) {
                        self->writing.clear();
                        if (!ec && !self->socket.is_open()) ec = asio::error::operation_aborted;
                        if (ec) {
                          self->finish(ec, 0);
                          return;
                        }
                        if (result) {
                          self->complete(*result);
                          return;
                        }
                        self->step();
                      });
  }

  void read_socket() {
    if (in.size() < socket_read_size) in.resize(socket_read_size);
    in_begin = in_end = 0;
    socket.async_read_some(asio::buffer(in), [self = shared_from_this()](std::error_code ec, std::size_t n) {
      // Closed (the stream destroyed, a deadline) after the read completed: the caller's
      // buffer may be gone, so mbedTLS must not run again.
      if (!ec && !self->socket.is_open()) ec = asio::error::operation_aborted;
      if (ec == asio::error::eof) {
        self->socket_eof = true;
      } else if (ec) {
        self->finish(ec, 0);
        return;
      }
      self->in_end = n;
      self->step();
    });
  }

  // The operation's result from mbedTLS's return value.
  void complete(int r) {
    switch (kind) {
      case Kind::read:
        if (r > 0) return finish({}, static_cast<std::size_t>(r));
        if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF)
          return finish(asio::error::eof, 0);
        return finish(mbedtls_error(r), 0);
      case Kind::write:
        if (r > 0) return finish({}, static_cast<std::size_t>(r));
        return finish(mbedtls_error(r), 0);
      case Kind::handshake:
      case Kind::shutdown:
        if (r == MBEDTLS_ERR_SSL_CONN_EOF) return finish(asio::error::eof, 0);
        return finish(r == 0 ? std::error_code() : mbedtls_error(r), 0);
    }
  }

  void finish(std::error_code ec, std::size_t n) {
    Handler h = std::move(handler);
    handler = nullptr;
    buffer = nullptr;
    // Asio's promise: a handler never runs inside the call that started its operation.
    if (initiating) {
      post(std::move(h), ec, n);
      return;
    }
    h(ec, n);
  }

  void post(Handler h, std::error_code ec, std::size_t n) {
    asio::post(socket.get_executor(), [h = std::move(h), ec, n]() mutable { h(ec, n); });
  }

  Socket socket;
  std::shared_ptr<const ServerConfig> config;
  mbedtls_ssl_context ssl;
  int setup_result = 0;

  Kind kind = Kind::handshake;
  void* buffer = nullptr;
  std::size_t buffer_size = 0;
  Handler handler;
  bool initiating = false;

  std::vector<unsigned char> in;  // ciphertext read from the socket, [in_begin, in_end) unread
  std::size_t in_begin = 0;
  std::size_t in_end = 0;
  bool socket_eof = false;
  std::vector<unsigned char> out;      // ciphertext mbedTLS produced, not yet written
  std::vector<unsigned char> writing;  // ciphertext on its way to the socket
};

TlsStream::TlsStream(Socket socket, std::shared_ptr<const ServerConfig> config)
    : state_(std::make_shared<State>(std::move(socket), std::move(config))) {
  // Writes are whole TLS records (and close_notify right after a response): Nagle's algorithm
  // would hold the second small one back for the peer's delayed ACK, 40 ms a request.
  std::error_code ignored;
  state_->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
}

TlsStream::~TlsStream() {
  std::error_code ignored;
  state_->socket.close(ignored);
}

TlsStream::executor_type TlsStream::get_executor() { return state_->socket.get_executor(); }

TlsStream::Socket& TlsStream::socket() { return state_->socket; }

void TlsStream::start_handshake(Handler handler) {
  state_->start(State::Kind::handshake, nullptr, 0, std::move(handler));
}

void TlsStream::start_read(asio::mutable_buffer buffer, Handler handler) {
  state_->start(State::Kind::read, buffer.data(), buffer.size(), std::move(handler));
}

void TlsStream::start_write(asio::const_buffer buffer, Handler handler) {
  state_->start(State::Kind::write, const_cast<void*>(buffer.data()), buffer.size(), std::move(handler));
}

void TlsStream::start_shutdown(Handler handler) {
  state_->start(State::Kind::shutdown, nullptr, 0, std::move(handler));
}

}  // namespace eddy::tls
