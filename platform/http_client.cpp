#include "platform/http_client.hpp"

#include <http_parser.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <cctype>
#include <charconv>
#include <climits>

#include "platform/tls.hpp"

namespace eddy::http {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t read_chunk = 64 * 1024;

std::string ms_text(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string host_port_text(std::string_view host, std::uint16_t port) {
  std::string h(host);
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return h + ":" + std::to_string(port);
}

// A plain TCP connection. Every operation runs on a private io_context under a deadline: the
// operation is started, the context runs for the time left, and an operation still pending
// then is cut off by closing the socket (asio's blocking-with-timeout idiom).
class TcpTransport final : public Transport {
 public:
  Status connect(const std::string& host, std::uint16_t port, milliseconds timeout) {
    const std::string where = host_port_text(host, port);
    const auto deadline = Clock::now() + timeout;
    asio::ip::tcp::resolver resolver(io_);
    asio::ip::tcp::resolver::results_type endpoints;
    std::error_code ec = asio::error::would_block;
    resolver.async_resolve(host, std::to_string(port), asio::ip::resolver_base::numeric_service,
                           [&](const std::error_code& e, asio::ip::tcp::resolver::results_type r) {
                             ec = e;
                             endpoints = std::move(r);
                           });
    if (!run_until(deadline, [&] { resolver.cancel(); }))
      return make_error(Errc::timeout, "resolve " + host + ": no answer within " + ms_text(timeout));
    if (ec) return make_error(Errc::network, "resolve " + host + ": " + ec.message());

    ec = asio::error::would_block;
    asio::async_connect(socket_, endpoints,
                        [&](const std::error_code& e, const asio::ip::tcp::endpoint&) { ec = e; });
    if (!run_until(deadline, [&] { close(); }))
      return make_error(Errc::timeout, "connect " + where + ": no connection within " + ms_text(timeout));
    if (ec) return make_error(Errc::network, "connect " + where + ": " + ec.message());
    std::error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    return {};
  }

  Expected<std::size_t> read_some(char* buffer, std::size_t size, milliseconds timeout) override {
    std::error_code ec = asio::error::would_block;
    std::size_t got = 0;
    socket_.async_read_some(asio::buffer(buffer, size), [&](const std::error_code& e, std::size_t n) {
      ec = e;
      got = n;
    });
    if (!run_until(Clock::now() + timeout, [&] { close(); }))
      return make_error(Errc::timeout, "no data from the server within " + ms_text(timeout));
    if (ec == asio::error::eof) return std::size_t{0};
    if (ec) return make_error(Errc::network, "read: " + ec.message());
    return got;
  }

  Status write_all(std::string_view data, milliseconds timeout) override {
    std::error_code ec = asio::error::would_block;
    asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                      [&](const std::error_code& e, std::size_t) { ec = e; });
    if (!run_until(Clock::now() + timeout, [&] { close(); }))
      return make_error(Errc::timeout, "could not send the request within " + ms_text(timeout));
    if (ec) return make_error(Errc::network, "write: " + ec.message());
    return {};
  }

 private:
  // Run the started operation until it completes (true) or the deadline passes (false: the
  // operation is cancelled by `cut_off` and drained).
  template <typename CutOff>
  bool run_until(Clock::time_point deadline, CutOff cut_off) {
    io_.restart();
    io_.run_until(deadline);
    if (io_.stopped()) return true;
    cut_off();
    io_.run();
    return false;
  }

  void close() {
    std::error_code ignored;
    socket_.close(ignored);
  }

  asio::io_context io_{1};
  asio::ip::tcp::socket socket_{io_};
};

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool has_line_break(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// One request on its own connection, the response parsed by http_parser as bytes arrive.
class Exchange final : public ResponseReader {
 public:
  // `deadline`: the end of the whole exchange (request()), none for streams (idle timeout only).
  Exchange(std::unique_ptr<Transport> transport, milliseconds idle, std::optional<Clock::time_point> deadline,
           bool head)
      : transport_(std::move(transport)), idle_(idle), deadline_(deadline) {
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    http_parser_settings_init(&settings_);
    settings_.on_header_field = &Exchange::on_header_field;
    settings_.on_header_value = &Exchange::on_header_value;
    settings_.on_headers_complete = head ? &Exchange::on_headers_complete_no_body : &Exchange::on_headers_complete;
    settings_.on_body = &Exchange::on_body;
    settings_.on_message_complete = &Exchange::on_message_complete;
  }

  Status send(std::string_view request) {
    auto t = op_timeout();
    if (!t) return std::unexpected(t.error());
    return transport_->write_all(request, *t);
  }

  // Read until the status line and headers are in.
  Status read_head() {
    while (!headers_done_) {
      if (auto s = pump(); !s) return s;
    }
    return {};
  }

  int status() const override { return status_; }
  const std::map<std::string, std::string>& headers() const override { return headers_; }
  std::optional<std::uint64_t> content_length() const override { return content_length_; }

  Expected<std::size_t> read_body(char* buffer, std::size_t size) override {
    if (failed_) return std::unexpected(*failed_);
    while (pending_offset_ == pending_.size() && !complete_) {
      pending_.clear();
      pending_offset_ = 0;
      if (auto s = pump(); !s) {
        failed_ = s.error();
        return std::unexpected(*failed_);
      }
    }
    std::size_t n = std::min(size, pending_.size() - pending_offset_);
    pending_.copy(buffer, n, pending_offset_);
    pending_offset_ += n;
    return n;
  }

 private:
  // The time the next socket operation may take: the idle timeout, cut by the overall deadline.
  Expected<milliseconds> op_timeout() const {
    if (!deadline_) return idle_;
    auto left = std::chrono::ceil<milliseconds>(*deadline_ - Clock::now());
    if (left.count() <= 0) return make_error(Errc::timeout, deadline_message());
    return std::min(idle_, left);
  }

  // One socket read through the parser.
  Status pump() {
    auto t = op_timeout();
    if (!t) return std::unexpected(t.error());
    auto n = transport_->read_some(buffer_.data(), buffer_.size(), *t);
    if (!n) {
      if (n.error().code == Errc::timeout && deadline_ && *t < idle_)
        return make_error(Errc::timeout, deadline_message());
      return std::unexpected(n.error());
    }
    if (*n == 0) {
      http_parser_execute(&parser_, &settings_, nullptr, 0);  // the end of a close-delimited body
      if (complete_) return {};
      return make_error(Errc::network, truncation_message());
    }
    std::size_t parsed = http_parser_execute(&parser_, &settings_, buffer_.data(), *n);
    if (complete_) return {};  // the parser paused itself at the end of the response
    if (HTTP_PARSER_ERRNO(&parser_) != HPE_OK || parsed != *n) {
      auto err = HTTP_PARSER_ERRNO(&parser_);
      return make_error(Errc::network, std::string("malformed response: ") + http_errno_description(err) + " (" +
                                           http_errno_name(err) + ")");
    }
    return {};
  }

  // request()'s deadline equals its timeout, which is also the idle timeout.
  std::string deadline_message() const { return "no complete response within " + ms_text(idle_); }

  std::string truncation_message() const {
    if (!headers_done_) return "the server closed the connection before a complete response header";
    if (content_length_)
      return "truncated: got " + std::to_string(body_received_) + " of " + std::to_string(*content_length_) +
             " bytes";
    return "truncated: the connection closed before the last chunk (got " + std::to_string(body_received_) +
           " bytes)";
  }

  static Exchange& self(http_parser* p) { return *static_cast<Exchange*>(p->data); }

  void commit_header() {
    if (field_.empty()) return;
    auto name = lowercase(field_);
    auto [it, inserted] = headers_.emplace(name, value_);
    if (!inserted) it->second += ", " + value_;
    field_.clear();
    value_.clear();
  }

  static int on_header_field(http_parser* p, const char* at, std::size_t len) {
    auto& x = self(p);
    if (x.in_value_) {
      x.commit_header();
      x.in_value_ = false;
    }
    x.field_.append(at, len);
    return 0;
  }

  static int on_header_value(http_parser* p, const char* at, std::size_t len) {
    auto& x = self(p);
    x.in_value_ = true;
    x.value_.append(at, len);
    return 0;
  }

  static int on_headers_complete(http_parser* p) {
    auto& x = self(p);
    x.commit_header();
    x.in_value_ = false;
    x.status_ = static_cast<int>(p->status_code);
    if (x.status_ / 100 == 1) {  // an interim response (100 Continue): the real one follows
      x.headers_.clear();
      return 0;
    }
    x.headers_done_ = true;
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX) x.content_length_ = p->content_length;
    return 0;
  }

  // A response to HEAD announces a body it does not carry.
  static int on_headers_complete_no_body(http_parser* p) {
    on_headers_complete(p);
    self(p).content_length_.reset();
    return self(p).headers_done_ ? 1 : 0;
  }

  static int on_body(http_parser* p, const char* at, std::size_t len) {
    auto& x = self(p);
    x.pending_.append(at, len);
    x.body_received_ += len;
    return 0;
  }

  static int on_message_complete(http_parser* p) {
    auto& x = self(p);
    if (!x.headers_done_) return 0;  // the end of an interim response
    x.complete_ = true;
    http_parser_pause(p, 1);  // anything after the response is not ours to read
    return 0;
  }

  std::unique_ptr<Transport> transport_;
  milliseconds idle_;
  std::optional<Clock::time_point> deadline_;
  http_parser parser_{};
  http_parser_settings settings_{};
  std::array<char, read_chunk> buffer_{};

  std::string field_, value_;
  bool in_value_ = false;
  bool headers_done_ = false;
  bool complete_ = false;
  int status_ = 0;
  std::map<std::string, std::string> headers_;
  std::optional<std::uint64_t> content_length_;
  std::uint64_t body_received_ = 0;
  std::string pending_;
  std::size_t pending_offset_ = 0;
  std::optional<Error> failed_;
};

Expected<std::string> build_request(const Url& url, const RequestOptions& options) {
  if (!is_token(options.method)) return make_error(Errc::invalid_argument, "invalid HTTP method \"" + options.method + "\"");
  std::map<std::string, std::pair<std::string, std::string>> fields;  // lowercase name → (name, value)
  auto set = [&](const std::string& name, const std::string& value) { fields[lowercase(name)] = {name, value}; };
  bool default_port = (url.scheme == "http" && url.port == 80) || (url.scheme == "https" && url.port == 443);
  std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  set("Host", default_port ? host : host + ":" + std::to_string(url.port));
  set("User-Agent", "eddy");
  set("Accept", "*/*");
  if (!options.body.empty() || options.method == "POST" || options.method == "PUT")
    set("Content-Length", std::to_string(options.body.size()));
  for (const auto& [name, value] : options.headers) {
    if (!is_token(name) || has_line_break(value))
      return make_error(Errc::invalid_argument, "invalid HTTP header \"" + name + "\"");
    set(name, value);
  }
  set("Connection", "close");  // one request per connection: no pooling to go stale
  std::string out = options.method + " " + url.target + " HTTP/1.1\r\n";
  for (const auto& [key, field] : fields) out += field.first + ": " + field.second + "\r\n";
  out += "\r\n";
  out += options.body;
  return out;
}

Expected<std::unique_ptr<Exchange>> start(std::string_view url_text, const RequestOptions& options,
                                          std::optional<Clock::time_point> deadline) {
  auto url = parse_url(url_text);
  if (!url) return std::unexpected(url.error());
  auto request_text = build_request(*url, options);
  if (!request_text) return std::unexpected(request_text.error());
  auto connect_timeout = options.timeout;
  auto transport = connect(*url, connect_timeout, options);
  if (!transport) return std::unexpected(transport.error());
  auto exchange = std::make_unique<Exchange>(std::move(*transport), options.timeout, deadline,
                                             options.method == "HEAD");
  if (auto s = exchange->send(*request_text); !s) return std::unexpected(s.error());
  if (auto s = exchange->read_head(); !s) return std::unexpected(s.error());
  int status = exchange->status();
  if (status / 100 == 3) {
    auto location = exchange->headers().find("location");
    if (location != exchange->headers().end())
      return make_error(Errc::network, "HTTP " + std::to_string(status) + " redirects to " + location->second +
                                           ", which is not followed: use that URL instead");
  }
  return exchange;
}

std::string context(std::string_view method, std::string_view url) {
  return std::string(method) + " " + std::string(url);
}

std::string status_text(int status) {
  std::string out = "HTTP " + std::to_string(status);
  std::string_view reason = http_status_str(static_cast<http_status>(status));
  if (reason != "<unknown>") out += " " + std::string(reason);
  return out;
}

}  // namespace

Expected<std::unique_ptr<Transport>> connect(const Url& url, milliseconds timeout, const RequestOptions& options) {
  if (url.scheme != "http" && url.scheme != "https")
    return make_error(Errc::unsupported, url.scheme + " is not supported (" + url.host + "): use http:// or https://");
  const auto deadline = Clock::now() + timeout;
  auto transport = std::make_unique<TcpTransport>();
  if (auto s = transport->connect(url.host, url.port, timeout); !s) return std::unexpected(s.error());
  if (url.scheme == "http") return std::unique_ptr<Transport>(std::move(transport));
  // The handshake gets what the connect left of `timeout`.
  auto left = std::max(milliseconds(1), std::chrono::ceil<milliseconds>(deadline - Clock::now()));
  tls::ClientOptions tls_options{options.ca_file, options.client_cert, options.client_key, options.tls_sessions,
                                 options.tls_resume_only};
  return tls::client_handshake(std::move(transport), url.host, url.port, "https://" + host_port_text(url.host, url.port),
                               tls_options, left);
}

Expected<std::unique_ptr<ResponseReader>> open(std::string_view url, const RequestOptions& options) {
  auto exchange = start(url, options, std::nullopt);
  if (!exchange) return std::unexpected(exchange.error().with_context(context(options.method, url)));
  return std::unique_ptr<ResponseReader>(std::move(*exchange));
}

Expected<Response> request(std::string_view url, const RequestOptions& options) {
  const auto what = context(options.method, url);
  const auto deadline = Clock::now() + options.timeout;
  auto exchange = start(url, options, deadline);
  if (!exchange) return std::unexpected(exchange.error().with_context(what));
  auto& x = **exchange;
  Response response;
  response.status = x.status();
  response.headers = x.headers();
  auto too_large = [&] {
    return make_error(Errc::too_large, what + ": the response body is larger than the limit of " +
                                           std::to_string(options.max_body) + " bytes");
  };
  if (x.content_length() && *x.content_length() > options.max_body) return too_large();
  std::array<char, read_chunk> buffer;
  for (;;) {
    auto n = x.read_body(buffer.data(), buffer.size());
    if (!n) return std::unexpected(n.error().with_context(what));
    if (*n == 0) break;
    if (response.body.size() + *n > options.max_body) return too_large();
    response.body.append(buffer.data(), *n);
  }
  return response;
}

Expected<int> get_stream(std::string_view url, const std::function<Status(std::string_view chunk)>& on_data,
                         const RequestOptions& options) {
  RequestOptions get = options;
  get.method = "GET";
  auto reader = open(url, get);
  if (!reader) return std::unexpected(reader.error());
  auto& r = **reader;
  if (r.status() / 100 != 2)
    return make_error(Errc::network, context("GET", url) + ": " + status_text(r.status()));
  std::array<char, read_chunk> buffer;
  for (;;) {
    auto n = r.read_body(buffer.data(), buffer.size());
    if (!n) return std::unexpected(n.error().with_context(context("GET", url)));
    if (*n == 0) break;
    if (auto s = on_data(std::string_view(buffer.data(), *n)); !s) return std::unexpected(s.error());
  }
  return r.status();
}

Status check_tcp(std::string_view address, milliseconds timeout) {
  auto bad = [&](std::string_view why) {
    return make_error(Errc::invalid_argument,
                      "invalid TCP address \"" + std::string(address) + "\": " + std::string(why) + " (want host:port)");
  };
  std::string host;
  std::string_view port_text;
  if (!address.empty() && address.front() == '[') {
    auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':')
      return bad("unclosed IPv6 literal or no port");
    host = std::string(address.substr(1, close - 1));
    port_text = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = std::string(address.substr(0, colon));
    port_text = address.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return bad("the port must be a number from 1 to 65535");
  TcpTransport transport;
  return transport.connect(host, static_cast<std::uint16_t>(port), timeout);
}

}  // namespace eddy::http
