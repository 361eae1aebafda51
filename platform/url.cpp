// parse_url (declared in platform/http_client.hpp) on its own: configuration parsing checks
// URLs without linking the HTTP client and its TLS library.
#include <http_parser.h>

#include <algorithm>
#include <cctype>

#include "platform/http_client.hpp"

namespace eddy::http {

namespace {
std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}
}  // namespace

Expected<Url> parse_url(std::string_view text) {
  http_parser_url parts;
  http_parser_url_init(&parts);
  auto bad = [&](std::string_view why) {
    return make_error(Errc::invalid_argument, "invalid URL \"" + std::string(text) + "\": " + std::string(why));
  };
  if (text.empty()) return bad("empty");
  if (http_parser_parse_url(text.data(), text.size(), 0, &parts) != 0) return bad("not an absolute http(s) URL");
  auto field = [&](http_parser_url_fields f) -> std::string_view {
    if (!(parts.field_set & (1u << f))) return {};
    return text.substr(parts.field_data[f].off, parts.field_data[f].len);
  };
  Url url;
  url.scheme = lowercase(field(UF_SCHEMA));
  if (url.scheme != "http" && url.scheme != "https") return bad("the scheme must be http or https");
  if (!field(UF_USERINFO).empty()) return bad("credentials in URLs are not supported");
  url.host = std::string(field(UF_HOST));
  if (url.host.empty()) return bad("no host");
  if (parts.field_set & (1u << UF_PORT)) {
    if (parts.port == 0) return bad("port 0");
    url.port = parts.port;
  } else {
    url.port = url.scheme == "https" ? 443 : 80;
  }
  url.target = std::string(field(UF_PATH));
  if (url.target.empty()) url.target = "/";
  if (parts.field_set & (1u << UF_QUERY)) url.target += "?" + std::string(field(UF_QUERY));
  return url;
}

}  // namespace eddy::http
