// The load generators' HTTP/1.1 client: one persistent (keep-alive) connection, plain or TLS
// through the project's transports (platform/http_client.hpp), requests rendered once as bytes
// and responses read with http-parser, body included. Blocking, with a deadline on every read
// and write: a load thread owns its connections and keeps one request in flight on each.
#pragma once

#include <http_parser.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.hpp"
#include "platform/http_client.hpp"

namespace eddy::bench {

struct Reply {
  int status = 0;
  std::string body;
};

class KeepAliveConnection {
 public:
  // Connect (and shake hands, for https) to the URL's host and port.
  static Expected<std::unique_ptr<KeepAliveConnection>> open(const http::Url& url,
                                                            const std::filesystem::path& ca_file = {});

  Status send(std::string_view request);
  // The next response on the connection; Errc::network when the server closed it or sent
  // something that is not HTTP.
  Expected<Reply> read();
  Expected<Reply> exchange(std::string_view request);

 private:
  KeepAliveConnection(std::unique_ptr<http::Transport> transport);
  static int on_body(http_parser* parser, const char* data, std::size_t size);
  static int on_complete(http_parser* parser);

  std::unique_ptr<http::Transport> transport_;
  http_parser parser_{};
  http_parser_settings settings_{};
  Reply reply_;
  bool complete_ = false;
  char buffer_[65536];
  std::size_t begin_ = 0, end_ = 0;
};

// "POST <path> HTTP/1.1" with Host, a bearer token (none when empty) and a JSON body.
std::string render_request(std::string_view method, const http::Url& base, std::string_view path,
                           std::string_view token, std::string_view body);

// The p-th quantile (0..1) of sorted samples; 0 when there are none.
double percentile(const std::vector<double>& sorted, double p);

}  // namespace eddy::bench
