#include "bench/load_client.hpp"

namespace eddy::bench {

namespace {
constexpr std::chrono::seconds kIoTimeout{30};
}

Expected<std::unique_ptr<KeepAliveConnection>> KeepAliveConnection::open(const http::Url& url,
                                                                         const std::filesystem::path& ca_file) {
  http::RequestOptions options;
  if (!ca_file.empty()) options.ca_file = ca_file;
  auto transport = http::connect(url, kIoTimeout, options);
  if (!transport) return std::unexpected(transport.error());
  return std::unique_ptr<KeepAliveConnection>(new KeepAliveConnection(std::move(*transport)));
}

KeepAliveConnection::KeepAliveConnection(std::unique_ptr<http::Transport> transport)
    : transport_(std::move(transport)) {
  http_parser_settings_init(&settings_);
  settings_.on_body = &KeepAliveConnection::on_body;
  settings_.on_message_complete = &KeepAliveConnection::on_complete;
}

int KeepAliveConnection::on_body(http_parser* parser, const char* data, std::size_t size) {
  static_cast<KeepAliveConnection*>(parser->data)->reply_.body.append(data, size);
  return 0;
}

int KeepAliveConnection::on_complete(http_parser* parser) {
  static_cast<KeepAliveConnection*>(parser->data)->complete_ = true;
  http_parser_pause(parser, 1);  // the next response's bytes stay in the buffer
  return 0;
}

Status KeepAliveConnection::send(std::string_view request) { return transport_->write_all(request, kIoTimeout); }

Expected<Reply> KeepAliveConnection::read() {
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  reply_ = Reply{};
  complete_ = false;
  while (!complete_) {
    if (begin_ == end_) {
      auto n = transport_->read_some(buffer_, sizeof buffer_, kIoTimeout);
      if (!n) return std::unexpected(n.error());
      if (*n == 0) return make_error(Errc::network, "the server closed the connection before answering");
      begin_ = 0;
      end_ = *n;
    }
    begin_ += http_parser_execute(&parser_, &settings_, buffer_ + begin_, end_ - begin_);
    auto err = HTTP_PARSER_ERRNO(&parser_);
    if (err != HPE_OK && err != HPE_PAUSED)
      return make_error(Errc::network, std::string("malformed response: ") + http_errno_description(err));
  }
  reply_.status = static_cast<int>(parser_.status_code);
  return std::move(reply_);
}

Expected<Reply> KeepAliveConnection::exchange(std::string_view request) {
  if (auto st = send(request); !st) return std::unexpected(st.error());
  return read();
}

std::string render_request(std::string_view method, const http::Url& base, std::string_view path,
                           std::string_view token, std::string_view body) {
  std::string out;
  out.reserve(200 + body.size());
  out.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(base.host);
  out.append(":").append(std::to_string(base.port)).append("\r\n");
  if (!token.empty()) out.append("Authorization: Bearer ").append(token).append("\r\n");
  if (!body.empty()) out.append("Content-Type: application/json\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n").append(body);
  return out;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1))];
}

}  // namespace eddy::bench
