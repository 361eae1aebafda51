#include "platform/http_server.hpp"

#include <http_parser.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cctype>
#include <charconv>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "platform/event_loop_asio.hpp"
#include "platform/log.hpp"
#include "platform/tls.hpp"
#include "platform/tls_stream.hpp"

namespace eddy::http {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

namespace {

using tcp = asio::ip::tcp;
using IoHandler = std::move_only_function<void(std::error_code, std::size_t)>;

// The byte stream under a connection: a TCP socket or a TLS session over one. The connection
// runs one operation at a time (TlsStream's rule), so this is all it needs.
class Stream {
 public:
  virtual ~Stream() = default;
  virtual void handshake(IoHandler handler) = 0;
  virtual void read_some(asio::mutable_buffer buffer, IoHandler handler) = 0;
  virtual void write_all(asio::const_buffer buffer, IoHandler handler) = 0;
  // End of what the server sends: TLS close_notify, then TCP FIN. The socket stays open.
  virtual void shutdown(IoHandler handler) = 0;
  virtual tcp::socket& socket() = 0;
  void close() {
    std::error_code ignored;
    socket().close(ignored);
  }
};

class PlainStream final : public Stream {
 public:
  explicit PlainStream(tcp::socket socket) : socket_(std::move(socket)) {
    std::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
  }
  void handshake(IoHandler handler) override {
    asio::post(socket_.get_executor(), [handler = std::move(handler)]() mutable { handler({}, 0); });
  }
  void read_some(asio::mutable_buffer buffer, IoHandler handler) override {
    socket_.async_read_some(buffer, std::move(handler));
  }
  void write_all(asio::const_buffer buffer, IoHandler handler) override {
    asio::async_write(socket_, buffer, std::move(handler));
  }
  void shutdown(IoHandler handler) override {
    std::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    asio::post(socket_.get_executor(), [handler = std::move(handler), ec]() mutable { handler(ec, 0); });
  }
  tcp::socket& socket() override { return socket_; }

 private:
  tcp::socket socket_;
};

class SecureStream final : public Stream {
 public:
  SecureStream(tcp::socket socket, std::shared_ptr<const tls::ServerConfig> config)
      : stream_(std::move(socket), std::move(config)) {}
  void handshake(IoHandler handler) override { stream_.async_handshake(std::move(handler)); }
  void read_some(asio::mutable_buffer buffer, IoHandler handler) override {
    stream_.async_read_some(buffer, std::move(handler));
  }
  void write_all(asio::const_buffer buffer, IoHandler handler) override {
    asio::async_write(stream_, buffer, std::move(handler));
  }
  void shutdown(IoHandler handler) override {
    stream_.async_shutdown([this, handler = std::move(handler)](std::error_code ec, std::size_t) mutable {
      std::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      handler(ec, 0);
    });
  }
  tcp::socket& socket() override { return stream_.socket(); }

 private:
  tls::TlsStream stream_;
};

// Posts to the loop on behalf of respond() from any thread, until the server is gone.
struct Poster {
  std::mutex mutex;
  asio::io_context* io = nullptr;

  void post(std::function<void()> fn) {
    std::lock_guard lock(mutex);
    if (io != nullptr) asio::post(*io, std::move(fn));
  }
};

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_line_break(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

std::string describe(const tcp::endpoint& endpoint) {
  auto address = endpoint.address();
  std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

class Connection;

}  // namespace

struct Server::State : std::enable_shared_from_this<Server::State> {
  State(asio::io_context& io_context, ServerOptions opts, RequestHandler h)
      : io(io_context), options(std::move(opts)), handler(std::move(h)), acceptor(io_context), accept_retry(io_context) {}

  void accept();
  void on_accept(tcp::socket socket);
  void stop();
  const std::string& date();

  asio::io_context& io;
  ServerOptions options;
  RequestHandler handler;
  std::shared_ptr<const tls::ServerConfig> tls;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  std::unordered_map<std::uint64_t, std::shared_ptr<Connection>> connections;
  std::uint64_t next_id = 0;
  bool stopped = false;
  std::shared_ptr<Poster> poster = std::make_shared<Poster>();
  std::time_t date_time = 0;
  std::string date_text;
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Server::State> server, std::unique_ptr<Stream> stream, std::string peer,
             std::uint64_t id)
      : server_(std::move(server)), stream_(std::move(stream)), peer_(std::move(peer)), id_(id),
        timer_(server_->io) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
  }

  // Serve the connection; with `refuse_status`, answer it at once and close.
  void start(int refuse_status = 0) {
    head_deadline_ = std::chrono::steady_clock::now() + server_->options.header_timeout;
    arm_at(head_deadline_);
    if (refuse_status != 0) {
      error_status_ = refuse_status;
      error_detail_ = "the server is at its connection limit; try again later";
      next();
      return;
    }
    phase_ = Phase::busy;
    stream_->handshake([self = shared_from_this()](std::error_code ec, std::size_t) {
      self->phase_ = Phase::idle;
      if (ec) {
        self->close();
        return;
      }
      self->next();
    });
  }

  // Close now: pending operations complete with operation_aborted.
  void close() {
    if (closed_) return;
    closed_ = true;
    ++timer_generation_;
    timer_.cancel();
    stream_->close();
    server_->connections.erase(id_);
  }

  // A response from the handler (on the loop thread).
  void on_response(std::uint64_t sequence, ServerResponse response) {
    if (closed_ || phase_ != Phase::handling || sequence != sequence_ || queue_.empty()) return;
    Pending pending = std::move(queue_.front());
    queue_.pop_front();
    bool keep_alive = pending.keep_alive && !server_->stopped;
    std::string text = serialize(response, pending, keep_alive);
    phase_ = Phase::idle;
    write(std::move(text), !keep_alive);
  }

 private:
  enum class Phase { idle, busy, handling };

  struct Pending {
    ServerRequest request;
    bool keep_alive = true;
    bool head = false;
    unsigned short http_minor = 1;
  };

  // What to do next, when no operation is pending: answer the queued requests in order, then
  // a parse error, then read more.
  void next() {
    if (closed_ || phase_ != Phase::idle) return;
    if (!queue_.empty()) {
      handle_front();
      return;
    }
    if (error_status_ != 0) {
      send_error();
      return;
    }
    if (send_continue_) {
      send_continue_ = false;
      write("HTTP/1.1 100 Continue\r\n\r\n", false);
      return;
    }
    read();
  }

  void read() {
    if (requests_begun_ == 0 || (in_message_ && !headers_done_)) {
      arm_at(head_deadline_);  // the request head is due by then (slowloris)
    } else {
      arm(server_->options.idle_timeout);  // between requests, and for each read of a body
    }
    phase_ = Phase::busy;
    stream_->read_some(asio::buffer(buffer_), [self = shared_from_this()](std::error_code ec, std::size_t n) {
      self->phase_ = Phase::idle;
      if (self->closed_) return;
      if (ec) {
        self->close();  // the peer closed (or reset), or the deadline closed the socket
        return;
      }
      self->on_read(n);
    });
  }

  void on_read(std::size_t n) {
    if (!parsing_) {  // a "Connection: close" request was the last: ignore what follows
      next();
      return;
    }
    http_parser_execute(&parser_, &settings(), buffer_.data(), n);
    auto err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) {
      parsing_ = false;
    } else if (err != HPE_OK) {
      parsing_ = false;
      if (error_status_ == 0) {
        error_status_ = err == HPE_HEADER_OVERFLOW ? 431 : 400;
        error_detail_ = std::string("malformed request: ") + http_errno_description(err);
      }
    } else if (parser_.upgrade != 0) {
      parsing_ = false;
      error_status_ = 501;
      error_detail_ = "protocol upgrades and CONNECT are not supported";
    }
    next();
  }

  void handle_front() {
    phase_ = Phase::handling;
    ++timer_generation_;  // the handler may take its time
    timer_.cancel();
    std::uint64_t sequence = ++sequence_;
    auto responder = std::make_shared<Responder>(server_->poster, weak_from_this(), sequence);
    auto respond = [responder](ServerResponse response) { responder->respond(std::move(response)); };
    // The handler gets the request itself (no copy of its headers and body); the queue keeps
    // what the answer needs of it (method and target, for the log).
    auto& front = queue_.front().request;
    ServerRequest request = std::move(front);
    front.method = request.method;
    front.target = request.target;
    auto& handler = server_->handler;
    try {
      handler(std::move(request), std::move(respond));
    } catch (const std::exception& e) {
      log::error(std::string("HTTP request handler threw: ") + e.what());
      responder->respond(ServerResponse{500, {}, "internal error\n"});
    }
  }

  void send_error() {
    Pending pending;
    pending.keep_alive = false;
    ServerResponse response{error_status_, {{"Content-Type", "text/plain"}},
                            std::to_string(error_status_) + " " + std::string(reason_phrase(error_status_)) + ": " +
                                error_detail_ + "\n"};
    error_status_ = 0;
    write(serialize(response, pending, false), true);
  }

  void write(std::string text, bool then_close) {
    out_ = std::move(text);
    arm(server_->options.idle_timeout);
    phase_ = Phase::busy;
    stream_->write_all(asio::buffer(out_), [self = shared_from_this(), then_close](std::error_code ec, std::size_t) {
      self->phase_ = Phase::idle;
      if (self->closed_) return;
      if (ec) {
        self->close();
        return;
      }
      if (then_close) {
        self->close_gracefully();
        return;
      }
      self->next();
    });
  }

  // Send FIN (after close_notify), then read and drop what the client still sends for a
  // moment, so that it reads the response rather than a reset (RFC 9112 9.6).
  void close_gracefully() {
    phase_ = Phase::busy;
    stream_->shutdown([self = shared_from_this()](std::error_code ec, std::size_t) {
      if (self->closed_) return;
      if (ec) {
        self->close();
        return;
      }
      self->arm(std::min(self->server_->options.idle_timeout, std::chrono::milliseconds(2000)));
      self->drain();
    });
  }

  void drain() {
    stream_->socket().async_read_some(asio::buffer(buffer_), [self = shared_from_this()](std::error_code ec, std::size_t) {
      if (self->closed_) return;
      if (ec) {
        self->close();
        return;
      }
      self->drain();
    });
  }

  void arm(std::chrono::milliseconds timeout) { arm_at(std::chrono::steady_clock::now() + timeout); }

  void arm_at(std::chrono::steady_clock::time_point deadline) {
    std::uint64_t generation = ++timer_generation_;
    timer_.expires_at(deadline);
    timer_.async_wait([weak = weak_from_this(), generation](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || generation != self->timer_generation_) return;
      self->close();
    });
  }

  std::string serialize(const ServerResponse& response, const Pending& pending, bool keep_alive) {
    int status = response.status;
    if (status < 100 || status > 999) {
      log::error("HTTP request handler answered with status " + std::to_string(status) + " for " +
                 pending.request.method + " " + pending.request.target + ": sending 500");
      status = 500;
    }
    bool has_body = !(status < 200 || status == 204 || status == 304);
    std::string out;
    out.reserve(160 + response.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reason_phrase(status);
    out += "\r\n";
    for (const auto& [name, value] : response.headers) {
      std::string lower = lowercase(name);
      if (lower == "content-length" || lower == "date" || lower == "connection" || lower == "transfer-encoding")
        continue;
      if (name.empty() || has_line_break(name) || has_line_break(value) || name.find(':') != std::string::npos) {
        log::error("HTTP request handler gave a malformed header \"" + name + "\": dropped");
        continue;
      }
      out += name;
      out += ": ";
      out += value;
      out += "\r\n";
    }
    out += "Date: ";
    out += server_->date();
    out += "\r\n";
    if (!keep_alive) {
      out += "Connection: close\r\n";
    } else if (pending.http_minor == 0) {
      out += "Connection: keep-alive\r\n";
    }
    if (has_body) {
      out += "Content-Length: ";
      out += std::to_string(response.body.size());
      out += "\r\n";
    }
    out += "\r\n";
    if (has_body && !pending.head) out += response.body;
    return out;
  }

  // Shared by every copy of a request's respond(): the first call wins; if none was made when
  // the last copy goes, the client gets a 500.
  struct Responder {
    Responder(std::shared_ptr<Poster> p, std::weak_ptr<Connection> c, std::uint64_t s)
        : poster(std::move(p)), connection(std::move(c)), sequence(s) {}
    ~Responder() {
      if (!done.load()) {
        post(ServerResponse{500, {{"Content-Type", "text/plain"}}, "internal error: the request was not answered\n"});
      }
    }
    Responder(const Responder&) = delete;
    Responder& operator=(const Responder&) = delete;

    void respond(ServerResponse response) {
      if (done.exchange(true)) return;
      post(std::move(response));
    }
    void post(ServerResponse response) {
      poster->post([weak = connection, s = sequence, response = std::move(response)]() mutable {
        if (auto c = weak.lock()) c->on_response(s, std::move(response));
      });
    }

    std::shared_ptr<Poster> poster;
    std::weak_ptr<Connection> connection;
    std::uint64_t sequence;
    std::atomic<bool> done{false};
  };

  // http-parser callbacks.
  static Connection& self(http_parser* p) { return *static_cast<Connection*>(p->data); }

  static const http_parser_settings& settings() {
    static const http_parser_settings s = [] {
      http_parser_settings x;
      http_parser_settings_init(&x);
      x.on_message_begin = [](http_parser* p) { return self(p).on_message_begin(); };
      x.on_url = [](http_parser* p, const char* at, std::size_t n) { return self(p).on_url(at, n); };
      x.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
        return self(p).on_header_field(at, n);
      };
      x.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
        return self(p).on_header_value(at, n);
      };
      x.on_headers_complete = [](http_parser* p) { return self(p).on_headers_complete(); };
      x.on_body = [](http_parser* p, const char* at, std::size_t n) { return self(p).on_body(at, n); };
      x.on_message_complete = [](http_parser* p) { return self(p).on_message_complete(); };
      return x;
    }();
    return s;
  }

  int on_message_begin() {
    current_ = ServerRequest{};
    current_.peer = peer_;
    field_.clear();
    value_.clear();
    in_value_ = false;
    header_bytes_ = 0;
    in_message_ = true;
    headers_done_ = false;
    // The first request's head is due header_timeout after the accept; later ones after their
    // first byte.
    if (requests_begun_++ != 0) head_deadline_ = std::chrono::steady_clock::now() + server_->options.header_timeout;
    return 0;
  }

  int count_header_bytes(std::size_t n) {
    header_bytes_ += n;
    if (header_bytes_ > server_->options.max_header_bytes) {
      error_status_ = 431;
      error_detail_ = "the request line and headers exceed " + std::to_string(server_->options.max_header_bytes) +
                      " bytes";
      return -1;
    }
    return 0;
  }

  int on_url(const char* at, std::size_t n) {
    current_.target.append(at, n);
    return count_header_bytes(n + 16);
  }

  void commit_header() {
    if (field_.empty()) return;
    std::string name = lowercase(std::move(field_));
    auto [it, inserted] = current_.headers.try_emplace(std::move(name), value_);
    if (!inserted) {
      it->second += ", ";
      it->second += value_;
    }
    field_.clear();
    value_.clear();
  }

  int on_header_field(const char* at, std::size_t n) {
    if (in_value_) {
      commit_header();
      in_value_ = false;
    }
    field_.append(at, n);
    return count_header_bytes(n + 4);
  }

  int on_header_value(const char* at, std::size_t n) {
    in_value_ = true;
    value_.append(at, n);
    return count_header_bytes(n);
  }

  int on_headers_complete() {
    commit_header();
    current_.method = http_method_str(static_cast<http_method>(parser_.method));
    if (parser_.http_major != 1) {
      error_status_ = 505;
      error_detail_ = "only HTTP/1.x is served";
      return -1;
    }
    http_parser_url url;
    http_parser_url_init(&url);
    if (http_parser_parse_url(current_.target.data(), current_.target.size(), 0, &url) != 0) {
      error_status_ = 400;
      error_detail_ = "malformed request target \"" + current_.target.substr(0, 200) + "\"";
      return -1;
    }
    auto field = [&](int f) -> std::string {
      if ((url.field_set & (1u << f)) == 0) return {};
      return current_.target.substr(url.field_data[f].off, url.field_data[f].len);
    };
    current_.path = field(UF_PATH);
    if (current_.path.empty()) current_.path = "/";
    current_.query = field(UF_QUERY);
    // parser_.content_length is ULLONG_MAX when there is none.
    if (parser_.content_length != ULLONG_MAX && parser_.content_length > server_->options.max_body) {
      error_status_ = 413;
      error_detail_ = "the body (" + std::to_string(parser_.content_length) + " bytes) exceeds the limit of " +
                      std::to_string(server_->options.max_body) + " bytes";
      return -1;
    }
    auto expect = current_.headers.find("expect");
    if (expect != current_.headers.end()) {
      if (lowercase(expect->second) != "100-continue") {
        error_status_ = 417;
        error_detail_ = "unsupported Expect \"" + expect->second + "\"";
        return -1;
      }
      send_continue_ = parser_.http_minor >= 1;
    }
    headers_done_ = true;
    return 0;
  }

  int on_body(const char* at, std::size_t n) {
    if (current_.body.size() + n > server_->options.max_body) {
      error_status_ = 413;
      error_detail_ = "the body exceeds the limit of " + std::to_string(server_->options.max_body) + " bytes";
      return -1;
    }
    current_.body.append(at, n);
    return 0;
  }

  int on_message_complete() {
    send_continue_ = false;  // the body is here
    in_message_ = false;
    Pending pending;
    pending.keep_alive = http_should_keep_alive(&parser_) != 0;
    pending.head = parser_.method == HTTP_HEAD;
    pending.http_minor = parser_.http_minor;
    pending.request = std::move(current_);
    queue_.push_back(std::move(pending));
    if (!queue_.back().keep_alive) http_parser_pause(&parser_, 1);  // nothing after it is served
    return 0;
  }

  std::shared_ptr<Server::State> server_;
  std::unique_ptr<Stream> stream_;
  std::string peer_;
  std::uint64_t id_;
  asio::steady_timer timer_;
  std::uint64_t timer_generation_ = 0;
  Phase phase_ = Phase::idle;
  bool closed_ = false;

  http_parser parser_;
  bool parsing_ = true;
  std::array<char, 16384> buffer_;
  ServerRequest current_;
  std::string field_, value_;
  bool in_value_ = false;
  bool in_message_ = false;
  bool headers_done_ = false;
  std::chrono::steady_clock::time_point head_deadline_;
  std::size_t header_bytes_ = 0;
  std::uint64_t requests_begun_ = 0;
  bool send_continue_ = false;

  std::deque<Pending> queue_;
  std::uint64_t sequence_ = 0;
  int error_status_ = 0;
  std::string error_detail_;
  std::string out_;
};

Expected<tcp::endpoint> parse_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return make_error(Errc::invalid_argument, "listen address \"" + listen + "\" is not host:port");
  }
  std::string host = listen.substr(0, colon);
  std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty() || host == "*") host = "0.0.0.0";
  std::uint16_t port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size()) {
    return make_error(Errc::invalid_argument,
                      "listen address \"" + listen + "\": the port is not a number from 0 to 65535");
  }
  std::error_code address_error;
  auto address = asio::ip::make_address(host, address_error);
  if (address_error) {
    return make_error(Errc::invalid_argument,
                      "listen address \"" + listen + "\": \"" + host + "\" is not an IP address");
  }
  return tcp::endpoint(address, port);
}

}  // namespace

void Server::State::accept() {
  acceptor.async_accept([self = shared_from_this()](std::error_code ec, tcp::socket socket) {
    if (self->stopped) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of file descriptors and the like: wait a little instead of spinning.
      log::warning("HTTP server: accept failed: " + ec.message() + "; retrying in 100 ms");
      self->accept_retry.expires_after(std::chrono::milliseconds(100));
      self->accept_retry.async_wait([self](std::error_code wait_error) {
        if (!wait_error && !self->stopped) self->accept();
      });
      return;
    }
    self->on_accept(std::move(socket));
    self->accept();
  });
}

void Server::State::on_accept(tcp::socket socket) {
  std::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  std::string peer = describe(endpoint);
  int refuse = 0;
  if (connections.size() >= options.max_connections) {
    // TLS: close before the handshake, which is what costs. Plain: a 503, while the refused
    // ones (closing within a couple of seconds) are not many more.
    if (tls || connections.size() >= options.max_connections + 64) return;  // socket closes here
    refuse = 503;
  }
  std::unique_ptr<Stream> stream;
  if (tls) {
    stream = std::make_unique<SecureStream>(std::move(socket), tls);
  } else {
    stream = std::make_unique<PlainStream>(std::move(socket));
  }
  std::uint64_t id = next_id++;
  auto connection = std::make_shared<Connection>(shared_from_this(), std::move(stream), std::move(peer), id);
  connections.emplace(id, connection);
  connection->start(refuse);
}

void Server::State::stop() {
  stopped = true;
  {
    std::lock_guard lock(poster->mutex);
    poster->io = nullptr;
  }
  std::error_code ignored;
  acceptor.close(ignored);
  accept_retry.cancel();
  auto open = std::move(connections);
  connections.clear();
  for (auto& [id, connection] : open) connection->close();
}

const std::string& Server::State::date() {
  std::time_t now = std::time(nullptr);
  if (now != date_time) {
    date_time = now;
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[64];
    std::size_t n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    date_text.assign(text, n);
  }
  return date_text;
}

Server::Server(std::shared_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() {
  if (state_) state_->stop();
}

std::uint16_t Server::port() const {
  std::error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

std::size_t Server::connection_count() const { return state_->connections.size(); }

Expected<std::unique_ptr<Server>> Server::start(EventLoop& loop, ServerOptions options, RequestHandler handler) {
  if (!handler) return make_error(Errc::invalid_argument, "HTTP server: no request handler");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return make_error(Errc::invalid_argument,
                      "HTTP server on " + options.listen + ": give both a TLS certificate and its key, or neither");
  }
  if (options.max_connections == 0 || options.max_header_bytes == 0) {
    return make_error(Errc::invalid_argument, "HTTP server on " + options.listen +
                                                  ": max_connections and max_header_bytes must be positive");
  }
  auto endpoint = parse_listen(options.listen);
  if (!endpoint) return std::unexpected(endpoint.error());

  auto& io = io_context_of(loop);
  auto state = std::make_shared<State>(io, std::move(options), std::move(handler));
  if (!state->options.tls_cert.empty()) {
    auto config = tls::ServerConfig::load(state->options.tls_cert, state->options.tls_key);
    if (!config) return std::unexpected(config.error().with_context("HTTP server on " + state->options.listen));
    state->tls = std::move(*config);
  }
  std::error_code ec;
  auto fail = [&](std::string_view what) {
    return make_error(Errc::network, "HTTP server: " + std::string(what) + " " + state->options.listen + ": " +
                                         ec.message());
  };
  state->acceptor.open(endpoint->protocol(), ec);
  if (ec) return fail("cannot open a socket for");
  state->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("cannot set SO_REUSEADDR on");
  state->acceptor.bind(*endpoint, ec);
  if (ec) return fail("cannot bind");
  state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on");
  state->poster->io = &io;
  state->accept();
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

}  // namespace eddy::http
