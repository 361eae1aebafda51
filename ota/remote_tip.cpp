#include "ota/remote_tip.hpp"

#include <http_parser.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "platform/http_client.hpp"
#include "platform/unique_fd.hpp"

namespace eddy::ota {

namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kIdLength = 40;

bool is_id(std::string_view s) {
  return s.size() == kIdLength &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A branch name that is safe as a path under refs/heads/ and as a ref in an advertisement.
// Git allows more (check-ref-format); anything unusual is left to the worker.
bool plain_branch(std::string_view b) {
  if (b.empty() || b.front() == '/' || b.back() == '/' || b.back() == '.' || b.front() == '.') return false;
  if (b.find("..") != std::string_view::npos || b.find("//") != std::string_view::npos ||
      b.find("/.") != std::string_view::npos || b.find("@{") != std::string_view::npos || b.ends_with(".lock"))
    return false;
  return std::none_of(b.begin(), b.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= ' ' || u == 0x7f || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[' ||
           c == '\\';
  });
}

// --- pkt-lines ---

// The length of one pkt-line's header value; an error names the offset.
Expected<std::size_t> pkt_length(std::string_view data, std::size_t at) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    char c = data[at + i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0)
      return make_error(Errc::network, "the ref advertisement has a bad pkt-line length \"" +
                                           std::string(data.substr(at, 4)) + "\" at byte " + std::to_string(at));
    n = n * 16 + static_cast<std::size_t>(v);
  }
  if (n != 0 && (n < 4 || n > 65520))
    return make_error(Errc::network, "the ref advertisement has a pkt-line of impossible length " + std::to_string(n) +
                                         " at byte " + std::to_string(at));
  return n;
}

// Where the advertisement in `data` ends (just past its last flush), or std::nullopt while
// more bytes are needed.
Expected<std::optional<std::size_t>> advertisement_end(std::string_view data, bool http) {
  int flushes_left = http ? 2 : 1;
  std::size_t at = 0;
  while (data.size() - at >= 4) {
    auto n = pkt_length(data, at);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) {
      at += 4;
      if (--flushes_left == 0) return std::optional<std::size_t>(at);
      continue;
    }
    if (data.size() - at < *n) break;
    at += *n;
  }
  return std::optional<std::size_t>();
}

// --- sockets with one deadline for the whole exchange ---

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1'000'000));
}

Status wait_for(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, ms_left(deadline));
    if (rc > 0) return {};
    if (rc == 0) return make_error(Errc::timeout, what + ": no answer in time");
    if (errno != EINTR) return std::unexpected(errno_error(errno, "poll", what));
  }
}

Expected<UniqueFd> connect_tcp(const std::string& host, std::uint16_t port, Clock::time_point deadline,
                               const std::string& what) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return make_error(Errc::network, what + ": cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  Error last{Errc::network, what + ": no address for " + host};
  for (addrinfo* a = found; a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (!fd) {
      last = errno_error(errno, "socket", what);
      continue;
    }
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
      last = Error{Errc::network, what + ": connect to " + host + ":" + service + ": " + std::strerror(errno)};
      continue;
    }
    if (auto st = wait_for(fd.get(), POLLOUT, deadline, what); !st) return std::unexpected(st.error());
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) return fd;
    last = Error{Errc::network, what + ": connect to " + host + ":" + service + ": " + std::strerror(err)};
  }
  return std::unexpected(last);
}

Status send_all(int fd, std::string_view data, Clock::time_point deadline, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return make_error(Errc::network, what + ": send: " + std::strerror(errno));
    if (auto st = wait_for(fd, POLLOUT, deadline, what); !st) return st;
  }
  return {};
}

// One read: the bytes appended to `into` (0 at the end of the stream).
Expected<std::size_t> receive(int fd, std::string& into, Clock::time_point deadline, const std::string& what) {
  char buffer[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n >= 0) {
      into.append(buffer, static_cast<std::size_t>(n));
      return static_cast<std::size_t>(n);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return make_error(Errc::network, what + ": receive: " + std::strerror(errno));
    if (auto st = wait_for(fd, POLLIN, deadline, what); !st) return std::unexpected(st.error());
  }
}

std::string pkt_line(std::string_view payload) {
  static constexpr char digits[] = "0123456789abcdef";
  std::size_t n = payload.size() + 4;
  std::string out{digits[(n >> 12) & 15], digits[(n >> 8) & 15], digits[(n >> 4) & 15], digits[n & 15]};
  return out.append(payload);
}

// --- transports ---

Expected<std::optional<std::string>> file_tip(const std::string& url, const std::string& ref, const std::string& what) {
  stdfs::path path(url.substr(std::string_view("file://").size()));
  if (!path.is_absolute() || url.find('%') != std::string::npos)
    return make_error(Errc::unsupported, what + ": only a plain absolute file:// path is read here");
  std::error_code ec;
  stdfs::path git_dir = path / ".git";
  if (!stdfs::is_directory(git_dir, ec)) git_dir = path;
  if (!stdfs::is_regular_file(git_dir / "HEAD", ec) || !stdfs::is_directory(git_dir / "objects", ec)) {
    if (!stdfs::exists(path, ec)) return make_error(Errc::not_found, what + ": " + path.string() + " does not exist");
    return make_error(Errc::unsupported, what + ": " + path.string() + " is not a repository folder read here");
  }
  auto read_all = [&](const stdfs::path& file) -> Expected<std::optional<std::string>> {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      if (errno == ENOENT || errno == ENOTDIR) return std::optional<std::string>();
      return std::unexpected(errno_error(errno, "open", file.string()));
    }
    std::string text;
    char buffer[8192];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
      text.append(buffer, static_cast<std::size_t>(in.gcount()));
      if (text.size() > kMaxAdvertisementBytes * 16)
        return make_error(Errc::too_large, what + ": " + file.string() + " is too large to read here");
    }
    if (in.bad()) return std::unexpected(errno_error(errno, "read", file.string()));
    return std::optional<std::string>(std::move(text));
  };
  auto loose = read_all(git_dir / ref);
  if (!loose) return std::unexpected(loose.error());
  if (*loose) {
    std::string_view text(**loose);
    if (text.ends_with('\n')) text.remove_suffix(1);
    if (!is_id(text))
      return make_error(Errc::unsupported, what + ": " + (git_dir / ref).string() + " is not a plain commit id");
    return std::optional<std::string>(text);
  }
  // Packed refs: "<id> <ref>" lines, a "# pack-refs with:" header, "^<id>" peeled tags.
  auto packed = read_all(git_dir / "packed-refs");
  if (!packed) return std::unexpected(packed.error());
  if (!*packed) return std::optional<std::string>();
  std::string_view rest(**packed);
  while (!rest.empty()) {
    auto eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (line.empty() || line.front() == '#' || line.front() == '^') continue;
    if (line.size() < kIdLength + 2 || line[kIdLength] != ' ' || !is_id(line.substr(0, kIdLength)))
      return make_error(Errc::unsupported, what + ": " + (git_dir / "packed-refs").string() + " has a line not read here");
    if (line.substr(kIdLength + 1) == ref) return std::optional<std::string>(line.substr(0, kIdLength));
  }
  return std::optional<std::string>();
}

Expected<std::optional<std::string>> git_tip(const std::string& url, const std::string& ref,
                                             Clock::time_point deadline, const std::string& what) {
  http_parser_url parts;
  http_parser_url_init(&parts);
  if (http_parser_parse_url(url.data(), url.size(), 0, &parts) != 0 || !(parts.field_set & (1u << UF_HOST)) ||
      !(parts.field_set & (1u << UF_PATH)) || (parts.field_set & (1u << UF_USERINFO)) ||
      (parts.field_set & (1u << UF_QUERY)))
    return make_error(Errc::unsupported, what + ": a git:// URL of a form not read here");
  const std::string host = url.substr(parts.field_data[UF_HOST].off, parts.field_data[UF_HOST].len);
  const std::string path = url.substr(parts.field_data[UF_PATH].off, parts.field_data[UF_PATH].len);
  const std::uint16_t port = (parts.field_set & (1u << UF_PORT)) ? parts.port : 9418;
  if (path.find('%') != std::string::npos || path.find('\0') != std::string::npos)
    return make_error(Errc::unsupported, what + ": a git:// path with escapes is not read here");
  auto fd = connect_tcp(host, port, deadline, what);
  if (!fd) return std::unexpected(fd.error());
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string host_field = (ipv6 ? "[" + host + "]" : host) + ((parts.field_set & (1u << UF_PORT)) ? ":" + std::to_string(port) : "");
  std::string request = "git-upload-pack " + path;
  request.push_back('\0');
  request += "host=" + host_field;
  request.push_back('\0');
  if (auto st = send_all(fd->get(), pkt_line(request), deadline, what); !st) return std::unexpected(st.error());
  std::string data;
  for (;;) {
    auto end = advertisement_end(data, false);
    if (!end) return std::unexpected(end.error().with_context(what));
    if ((*end ? **end : data.size()) > kMaxAdvertisementBytes)
      return make_error(Errc::too_large, what + ": the ref advertisement is larger than " +
                                             std::to_string(kMaxAdvertisementBytes) + " bytes");
    if (*end) {
      data.resize(**end);
      break;
    }
    auto n = receive(fd->get(), data, deadline, what);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) {
      // The server may refuse with one ERR line and close.
      if (auto length = data.size() >= 4 ? pkt_length(data, 0) : Expected<std::size_t>(0);
          length && *length > 8 && data.size() >= *length && data.compare(4, 4, "ERR ") == 0) {
        auto refused = ref_in_advertisement(data.substr(0, *length) + "0000", ref, false);
        if (!refused) return std::unexpected(refused.error().with_context(what));
      }
      return make_error(Errc::network, what + ": the server closed the connection in the middle of its ref advertisement");
    }
  }
  // A client that wants nothing says so with a flush; upload-pack then ends quietly.
  (void)send_all(fd->get(), "0000", deadline, what);
  auto found = ref_in_advertisement(data, ref, false);
  if (!found) return std::unexpected(found.error().with_context(what));
  return found;
}

Expected<std::optional<std::string>> http_tip(const std::string& url, const std::string& ref,
                                              Clock::time_point deadline, const std::string& what) {
  std::string base = url;
  while (base.ends_with('/')) base.pop_back();
  auto parsed = http::parse_url(base + "/info/refs?service=git-upload-pack");
  if (!parsed) return make_error(Errc::unsupported, what + ": " + parsed.error().message);
  if (parsed->scheme != "http") return make_error(Errc::unsupported, what + ": only http:// is read here");
  auto fd = connect_tcp(parsed->host, parsed->port, deadline, what);
  if (!fd) return std::unexpected(fd.error());
  const bool ipv6 = parsed->host.find(':') != std::string::npos;
  std::string host_field = (ipv6 ? "[" + parsed->host + "]" : parsed->host) +
                           (parsed->port == 80 ? "" : ":" + std::to_string(parsed->port));
  std::string request = "GET " + parsed->target + " HTTP/1.1\r\nHost: " + host_field +
                        "\r\nUser-Agent: git/eddyd\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  if (auto st = send_all(fd->get(), request, deadline, what); !st) return std::unexpected(st.error());

  struct Response {
    std::string header_field;
    std::string content_type;
    bool in_content_type = false;
    std::string body;
    bool too_large = false;
    bool complete = false;
  } response;
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
    auto* r = static_cast<Response*>(p->data);
    r->header_field.assign(at, n);
    std::transform(r->header_field.begin(), r->header_field.end(), r->header_field.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r->in_content_type = r->header_field == "content-type";
    return 0;
  };
  settings.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
    auto* r = static_cast<Response*>(p->data);
    if (r->in_content_type) r->content_type.append(at, n);
    return 0;
  };
  settings.on_body = [](http_parser* p, const char* at, std::size_t n) {
    auto* r = static_cast<Response*>(p->data);
    if (r->body.size() + n > kMaxAdvertisementBytes) {
      r->too_large = true;
      return 1;
    }
    r->body.append(at, n);
    return 0;
  };
  settings.on_message_complete = [](http_parser* p) {
    static_cast<Response*>(p->data)->complete = true;
    return 0;
  };
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &response;
  std::string chunk;
  while (!response.complete) {
    chunk.clear();
    auto n = receive(fd->get(), chunk, deadline, what);
    if (!n) return std::unexpected(n.error());
    std::size_t used = http_parser_execute(&parser, &settings, chunk.data(), chunk.size());
    if (response.too_large)
      return make_error(Errc::too_large, what + ": the ref advertisement is larger than " +
                                             std::to_string(kMaxAdvertisementBytes) + " bytes");
    if (*n == 0) break;  // the end of a body that ran to the close, or a response cut short
    if (parser.http_errno != HPE_OK || used != chunk.size())
      return make_error(Errc::network, what + ": a malformed HTTP response: " +
                                           http_errno_description(static_cast<http_errno>(parser.http_errno)));
  }
  if (!response.complete)
    return make_error(Errc::network, what + ": the server closed the connection before the response ended");
  if (parser.status_code == 404) return make_error(Errc::not_found, what + ": HTTP 404 (no such repository)");
  if (parser.status_code != 200)
    return make_error(Errc::network, what + ": HTTP " + std::to_string(parser.status_code));
  std::string type = response.content_type;
  if (auto semi = type.find(';'); semi != std::string::npos) type.resize(semi);
  while (!type.empty() && type.back() == ' ') type.pop_back();
  if (type != "application/x-git-upload-pack-advertisement")
    return make_error(Errc::unsupported, what + ": not a smart Git HTTP server (Content-Type \"" +
                                             response.content_type + "\")");
  auto found = ref_in_advertisement(response.body, ref, true);
  if (!found) return std::unexpected(found.error().with_context(what));
  return found;
}

}  // namespace

Expected<std::optional<std::string>> ref_in_advertisement(std::string_view data, std::string_view ref, bool http) {
  auto bad = [](const std::string& why) { return make_error(Errc::network, "a malformed ref advertisement: " + why); };
  std::size_t at = 0;
  bool service_line = http;  // next: "# service=git-upload-pack" and its flush
  bool service_flush = false;
  bool first = true;
  std::optional<std::string> found;
  for (;;) {
    if (data.size() - at < 4) return bad("it ends before its closing flush-pkt (byte " + std::to_string(at) + ")");
    auto n = pkt_length(data, at);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) {
      at += 4;
      if (service_flush) {
        service_flush = false;
        continue;
      }
      if (service_line) return bad("no \"# service=git-upload-pack\" line before the first flush-pkt");
      if (at != data.size()) return bad("bytes after its closing flush-pkt (byte " + std::to_string(at) + ")");
      return found;
    }
    if (data.size() - at < *n) return bad("a pkt-line runs past its end (byte " + std::to_string(at) + ")");
    std::string_view line = data.substr(at + 4, *n - 4);
    const std::size_t line_at = at;
    at += *n;
    if (line.ends_with('\n')) line.remove_suffix(1);
    if (line.starts_with("ERR "))
      return make_error(Errc::network, "the server refused: " + std::string(line.substr(4, 200)));
    if (service_line) {
      if (line != "# service=git-upload-pack") return bad("it does not start with \"# service=git-upload-pack\"");
      service_line = false;
      service_flush = true;
      continue;
    }
    if (service_flush) return bad("no flush-pkt after the service line");
    if (first && line == "version 1") {
      first = false;
      continue;
    }
    if (line.starts_with("shallow ") && is_id(line.substr(8))) continue;
    if (first) {
      // Capabilities follow the first ref after a NUL.
      if (auto nul = line.find('\0'); nul != std::string_view::npos) line = line.substr(0, nul);
      else return bad("no capabilities after the first ref");
      first = false;
    } else if (line.find('\0') != std::string_view::npos) {
      return bad("a NUL in a ref line at byte " + std::to_string(line_at));
    }
    if (line.size() < kIdLength + 2 || line[kIdLength] != ' ' || !is_id(line.substr(0, kIdLength)))
      return bad("a line that is not \"<id> <ref>\" at byte " + std::to_string(line_at));
    std::string_view name = line.substr(kIdLength + 1);
    if (name.empty() || name.find(' ') != std::string_view::npos)
      return bad("a ref name with a space at byte " + std::to_string(line_at));
    if (name == ref) {
      if (found) return bad("the ref " + std::string(ref) + " listed twice");
      found = std::string(line.substr(0, kIdLength));
    }
  }
}

Expected<std::string> remote_tip(std::string_view url_view, std::string_view branch_view,
                                 std::chrono::milliseconds timeout) {
  const std::string url(url_view);
  const std::string branch(branch_view);
  const std::string what = "the tip of branch " + branch + " at " + url;
  if (!plain_branch(branch))
    return make_error(Errc::invalid_argument, what + ": not a plain branch name");
  const std::string ref = "refs/heads/" + branch;
  const auto deadline = Clock::now() + timeout;
  Expected<std::optional<std::string>> found = std::optional<std::string>();
  if (url.starts_with("file://")) found = file_tip(url, ref, what);
  else if (url.starts_with("git://")) found = git_tip(url, ref, deadline, what);
  else if (url.starts_with("http://")) found = http_tip(url, ref, deadline, what);
  else return make_error(Errc::unsupported, what + ": only file://, git:// and http:// are read here");
  if (!found) return std::unexpected(found.error());
  if (!*found) return make_error(Errc::not_found, what + ": the repository has no branch " + branch);
  return std::move(**found);
}

}  // namespace eddy::ota
