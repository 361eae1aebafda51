#include "platform/tls.hpp"

#include <arpa/inet.h>
#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl_internal.h>

#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <vector>

#include "platform/http_client.hpp"
#include "platform/tls_mbedtls.hpp"

namespace eddy::tls {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string describe_mbedtls_error(int code) {
  std::array<char, 256> text{};
  mbedtls_strerror(code, text.data(), text.size());
  return std::string(text.data());
}

// ---------------------------------------------------------------------------------------------
// Randomness: one DRBG per process, seeded on first use.

namespace detail {
namespace {

struct Random {
  std::mutex mutex;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  int seed_result = 0;

  Random() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    static constexpr unsigned char personalization[] = "eddy tls";
    seed_result = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, personalization,
                                        sizeof personalization - 1);
  }
  // Never destroyed: connections on other threads may still draw from it at exit.
};

Random& process_random() {
  static auto* random = new Random();
  return *random;
}

}  // namespace

int random(void*, unsigned char* output, std::size_t length) {
  auto& r = process_random();
  std::lock_guard lock(r.mutex);
  if (r.seed_result != 0) return r.seed_result;
  return mbedtls_ctr_drbg_random(&r.drbg, output, length);
}

Status ensure_random() {
  auto& r = process_random();
  if (r.seed_result != 0)
    return make_error(Errc::internal, "could not seed the TLS random generator from the system's entropy: " +
                                          describe_mbedtls_error(r.seed_result));
  return {};
}

}  // namespace detail

namespace {

// ---------------------------------------------------------------------------------------------
// Files: certificates and keys, with errors that name the file.

Status check_file(const stdfs::path& path, std::string_view what) {
  std::error_code ec;
  if (!stdfs::exists(path, ec))
    return make_error(Errc::not_found, std::string(what) + " " + path.string() + " does not exist");
  if (!stdfs::is_regular_file(path, ec))
    return make_error(Errc::invalid_argument, std::string(what) + " " + path.string() + " is not a file");
  return {};
}

// Parse every PEM certificate in `path` into `chain`. A bundle in which some certificates are
// in a form mbedTLS does not take is accepted as long as one certificate parsed.
Status load_certificates(mbedtls_x509_crt& chain, const stdfs::path& path, std::string_view what) {
  if (auto s = check_file(path, what); !s) return s;
  int r = mbedtls_x509_crt_parse_file(&chain, path.c_str());
  if (r < 0 || chain.version == 0) {
    std::string why = r < 0 ? describe_mbedtls_error(r) : "no certificate could be parsed";
    if (r == MBEDTLS_ERR_PK_FILE_IO_ERROR)
      return make_error(Errc::io, "cannot read " + std::string(what) + " " + path.string());
    return make_error(Errc::invalid_argument,
                      std::string(what) + " " + path.string() + " holds no usable PEM certificate: " + why);
  }
  return {};
}

Status load_key(mbedtls_pk_context& key, const stdfs::path& path, std::string_view what) {
  if (auto s = check_file(path, what); !s) return s;
  int r = mbedtls_pk_parse_keyfile(&key, path.c_str(), nullptr);
  if (r == MBEDTLS_ERR_PK_FILE_IO_ERROR) return make_error(Errc::io, "cannot read " + std::string(what) + " " + path.string());
  if (r != 0)
    return make_error(Errc::invalid_argument, std::string(what) + " " + path.string() +
                                                  " is not a usable unencrypted PEM private key: " +
                                                  describe_mbedtls_error(r));
  return {};
}

Status check_pair(mbedtls_x509_crt& cert, mbedtls_pk_context& key, const stdfs::path& cert_file,
                  const stdfs::path& key_file) {
  if (mbedtls_pk_check_pair(&cert.pk, &key) != 0)
    return make_error(Errc::invalid_argument,
                      "key " + key_file.string() + " does not belong to certificate " + cert_file.string());
  return {};
}

// A parsed CA file, shared between connections (verification only reads it) and parsed again
// when the file changes: parsing the system bundle costs more than a handshake on a small board.
struct CaChain {
  CaChain() { mbedtls_x509_crt_init(&chain); }
  ~CaChain() { mbedtls_x509_crt_free(&chain); }
  CaChain(const CaChain&) = delete;
  CaChain& operator=(const CaChain&) = delete;
  mbedtls_x509_crt chain;
};

Expected<std::shared_ptr<CaChain>> load_ca(const stdfs::path& path) {
  struct Entry {
    stdfs::file_time_type mtime;
    std::uintmax_t size;
    std::shared_ptr<CaChain> chain;
  };
  static std::mutex mutex;
  static std::map<stdfs::path, Entry> cache;

  std::error_code ec;
  auto mtime = stdfs::last_write_time(path, ec);
  auto size = ec ? 0 : stdfs::file_size(path, ec);
  std::lock_guard lock(mutex);
  if (!ec) {
    auto it = cache.find(path);
    if (it != cache.end() && it->second.mtime == mtime && it->second.size == size) return it->second.chain;
  }
  auto chain = std::make_shared<CaChain>();
  if (auto s = load_certificates(chain->chain, path, "CA file"); !s) return std::unexpected(s.error());
  if (!ec) cache[path] = Entry{mtime, size, chain};
  return chain;
}

// ---------------------------------------------------------------------------------------------
// Host names: mbedTLS 2.28 matches DNS names (SAN dNSName, else CN) but not IP addresses, and
// an IP address must not be sent as SNI. For an IP literal we check the certificate's SAN
// iPAddress entries ourselves, in the verify callback.

std::optional<std::vector<unsigned char>> ip_bytes(const std::string& host) {
  std::array<unsigned char, 16> buffer{};
  if (inet_pton(AF_INET, host.c_str(), buffer.data()) == 1) return std::vector<unsigned char>(buffer.begin(), buffer.begin() + 4);
  if (inet_pton(AF_INET6, host.c_str(), buffer.data()) == 1) return std::vector<unsigned char>(buffer.begin(), buffer.end());
  return std::nullopt;
}

// Whether the certificate's subjectAltName lists `ip` as an iPAddress, walking the DER of
// its extensions with mbedTLS's ASN.1 reader.
bool san_has_ip(const mbedtls_x509_crt& crt, const std::vector<unsigned char>& ip) {
  if (crt.v3_ext.p == nullptr || crt.v3_ext.len == 0) return false;
  unsigned char* p = crt.v3_ext.p;
  const unsigned char* end = p + crt.v3_ext.len;
  std::size_t len = 0;
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) return false;
  end = p + len;
  while (p < end) {
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) return false;
    const unsigned char* ext_end = p + len;
    mbedtls_x509_buf oid{};
    oid.tag = MBEDTLS_ASN1_OID;
    if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0) return false;
    oid.p = p;
    p += oid.len;
    int critical = 0;
    int r = mbedtls_asn1_get_bool(&p, ext_end, &critical);
    if (r != 0 && r != MBEDTLS_ERR_ASN1_UNEXPECTED_TAG) return false;
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0) return false;
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) == 0) {
      const unsigned char* names_end = p + len;
      std::size_t names_len = 0;
      if (mbedtls_asn1_get_tag(&p, names_end, &names_len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return false;
      while (p < names_end) {
        unsigned char tag = *p++;
        if (mbedtls_asn1_get_len(&p, names_end, &len) != 0) return false;
        if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) && len == ip.size() &&
            std::memcmp(p, ip.data(), len) == 0)
          return true;
        p += len;
      }
      return false;
    }
    p = const_cast<unsigned char*>(ext_end);
  }
  return false;
}

struct IpCheck {
  std::vector<unsigned char> ip;
};

int verify_ip(void* context, mbedtls_x509_crt* crt, int depth, std::uint32_t* flags) {
  if (depth == 0 && !san_has_ip(*crt, static_cast<IpCheck*>(context)->ip)) *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Saved sessions.

// A file's size and modification time, which change when it is replaced: a session made under
// one CA file is not offered under another. "" when the file cannot be looked at.
std::string file_stamp(const stdfs::path& path) {
  std::error_code ec;
  auto size = stdfs::file_size(path, ec);
  if (ec) return {};
  auto mtime = stdfs::last_write_time(path, ec);
  if (ec) return {};
  return std::to_string(size) + ":" + std::to_string(mtime.time_since_epoch().count());
}

// An mbedtls_ssl_session that frees (and wipes) itself.
struct Session {
  Session() { mbedtls_ssl_session_init(&session); }
  ~Session() { mbedtls_ssl_session_free(&session); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  mbedtls_ssl_session session;
};

// The session's serialization, or "" when it has no ticket to resume with (the server issues
// none) or cannot be serialized.
std::string save_session(const mbedtls_ssl_session& session) {
  if (session.ticket == nullptr || session.ticket_len == 0) return {};
  std::size_t size = 0;
  if (mbedtls_ssl_session_save(&session, nullptr, 0, &size) != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL) return {};
  std::vector<unsigned char> buffer(size);
  if (mbedtls_ssl_session_save(&session, buffer.data(), buffer.size(), &size) != 0) return {};
  std::string out(reinterpret_cast<const char*>(buffer.data()), size);
  mbedtls_platform_zeroize(buffer.data(), buffer.size());
  return out;
}

// ---------------------------------------------------------------------------------------------
// The client session: mbedTLS over a connected Transport, whose reads and writes get the time
// left to the deadline of the TLS operation running.

std::string ms_text(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

class ClientSession final : public http::Transport {
 public:
  ClientSession(std::unique_ptr<http::Transport> inner, std::string url, std::string ca_file)
      : inner_(std::move(inner)), url_(std::move(url)), ca_file_(std::move(ca_file)) {
    mbedtls_ssl_config_init(&conf_);
    mbedtls_ssl_init(&ssl_);
    mbedtls_x509_crt_init(&own_cert_);
    mbedtls_pk_init(&own_key_);
  }

  ~ClientSession() override {
    // Say goodbye when the session is healthy; a session that failed or timed out is dropped.
    if (handshake_done_ && !io_error_) {
      deadline_ = Clock::now() + milliseconds(1000);
      mbedtls_ssl_close_notify(&ssl_);
    }
    mbedtls_ssl_free(&ssl_);
    mbedtls_ssl_config_free(&conf_);
    mbedtls_x509_crt_free(&own_cert_);
    mbedtls_pk_free(&own_key_);
  }

  Status setup(const std::string& host, std::uint16_t port, const ClientOptions& options) {
    if (auto s = detail::ensure_random(); !s) return s;
    // resume_only never reaches the server's certificate: the CA file is not parsed (without
    // a CA chain, a certificate would fail verification: it fails closed).
    if (!options.resume_only) {
      auto ca = load_ca(options.ca_file);
      if (!ca) return std::unexpected(ca.error());
      ca_ = *ca;
    }
    int r = mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT);
    if (r != 0) return make_error(Errc::internal, "TLS configuration: " + describe_mbedtls_error(r));
    mbedtls_ssl_conf_min_version(&conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
    if (ca_) mbedtls_ssl_conf_ca_chain(&conf_, &ca_->chain, nullptr);
    mbedtls_ssl_conf_rng(&conf_, detail::random, nullptr);
    if (!options.cert_file.empty() || !options.key_file.empty()) {
      if (options.cert_file.empty() || options.key_file.empty())
        return make_error(Errc::invalid_argument, "a client certificate needs both a certificate and a key file");
      if (auto s = load_certificates(own_cert_, options.cert_file, "client certificate"); !s) return s;
      if (auto s = load_key(own_key_, options.key_file, "client key"); !s) return s;
      if (auto s = check_pair(own_cert_, own_key_, options.cert_file, options.key_file); !s) return s;
      r = mbedtls_ssl_conf_own_cert(&conf_, &own_cert_, &own_key_);
      if (r != 0) return make_error(Errc::internal, "TLS client certificate: " + describe_mbedtls_error(r));
    }
    r = mbedtls_ssl_setup(&ssl_, &conf_);
    if (r != 0) return make_error(Errc::internal, "TLS session: " + describe_mbedtls_error(r));
    if (auto ip = ip_bytes(host)) {
      ip_check_.ip = std::move(*ip);
      mbedtls_ssl_set_verify(&ssl_, verify_ip, &ip_check_);
    } else {
      r = mbedtls_ssl_set_hostname(&ssl_, host.c_str());
      if (r != 0) return make_error(Errc::invalid_argument, "TLS host name \"" + host + "\": " + describe_mbedtls_error(r));
    }
    host_ = host;
    mbedtls_ssl_set_bio(&ssl_, this, &ClientSession::bio_send, &ClientSession::bio_recv, nullptr);
    sessions_ = options.sessions;
    resume_only_ = options.resume_only;
    if (sessions_ != nullptr) {
      peer_.host = host;
      peer_.port = port;
      peer_.ca_file = options.ca_file.string();
      peer_.ca_stamp = file_stamp(options.ca_file);
      peer_.client_cert = options.cert_file.string();
      offer();
    }
    if (resume_only_ && !offered_)
      return make_error(Errc::conflict, "TLS handshake with " + url_ + ": no saved session to resume");
    return {};
  }

  Status handshake(milliseconds timeout) {
    deadline_ = Clock::now() + timeout;
    const std::string what = "TLS handshake with " + url_;
    // mbedtls_ssl_handshake's own loop, step by step: the step that reads the ServerHello
    // tells whether the server resumes the offered session (handshake->resume stays 1) before
    // any certificate or key exchange is parsed.
    int r = 0;
    while (ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
      const int state = ssl_.state;
      r = mbedtls_ssl_handshake_step(&ssl_);
      if (r != 0) break;
      if (state == MBEDTLS_SSL_SERVER_HELLO && ssl_.handshake != nullptr) {
        resumed_ = offered_ && ssl_.handshake->resume != 0;
        if (resume_only_ && !resumed_) {
          // Dropped without close_notify (handshake_done_ stays false): the server sees a
          // handshake cut short, and this process never runs the key exchange.
          if (sessions_ != nullptr) sessions_->forget(peer_);
          return make_error(Errc::conflict, what + ": the server did not resume the saved session");
        }
      }
    }
    if (r == 0) {
      handshake_done_ = true;
      keep_session();
      return {};
    }
    // A failed handshake that offered a session: the next one starts afresh.
    if (offered_ && sessions_ != nullptr) sessions_->forget(peer_);
    if (io_error_) {
      if (io_error_->code == Errc::timeout)
        return make_error(Errc::timeout, what + ": not finished within " + ms_text(timeout));
      return std::unexpected(io_error_->with_context(what));
    }
    if (r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) return make_error(Errc::network, what + ": " + verify_failure());
    if (r == MBEDTLS_ERR_SSL_CONN_EOF)
      return make_error(Errc::network, what + ": the server closed the connection (is it a TLS server?)");
    if (r == MBEDTLS_ERR_SSL_INVALID_RECORD || r == MBEDTLS_ERR_SSL_BAD_INPUT_DATA ||
        r == MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE || r == MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO)
      return make_error(Errc::network, what + ": the server does not speak TLS (a plain http:// server?): " +
                                           describe_mbedtls_error(r));
    if (r == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)
      return make_error(Errc::network, what + ": the server refused the handshake (TLS alert " +
                                           std::to_string(ssl_.in_msg != nullptr ? ssl_.in_msg[1] : 0) +
                                           "; does it require a client certificate or a newer TLS version?)");
    return make_error(Errc::network, what + ": " + describe_mbedtls_error(r));
  }

  Expected<std::size_t> read_some(char* buffer, std::size_t size, milliseconds timeout) override {
    deadline_ = Clock::now() + timeout;
    io_error_.reset();
    int r = mbedtls_ssl_read(&ssl_, reinterpret_cast<unsigned char*>(buffer), size);
    if (r > 0) return static_cast<std::size_t>(r);
    // close_notify, or the TCP connection closed without one: the end of the stream. The
    // HTTP layer still tells a body cut short by its Content-Length or chunking.
    if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) return std::size_t{0};
    if (io_error_) {
      if (io_error_->code == Errc::timeout)
        return make_error(Errc::timeout, "no data from the server within " + ms_text(timeout));
      return std::unexpected(*io_error_);
    }
    return make_error(Errc::network, "TLS read from " + url_ + ": " + describe_mbedtls_error(r));
  }

  Status write_all(std::string_view data, milliseconds timeout) override {
    deadline_ = Clock::now() + timeout;
    io_error_.reset();
    while (!data.empty()) {
      int r = mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data.data()), data.size());
      if (r <= 0) {
        if (io_error_) {
          if (io_error_->code == Errc::timeout)
            return make_error(Errc::timeout, "could not send the request within " + ms_text(timeout));
          return std::unexpected(*io_error_);
        }
        return make_error(Errc::network, "TLS write to " + url_ + ": " + describe_mbedtls_error(r));
      }
      data.remove_prefix(static_cast<std::size_t>(r));
    }
    return {};
  }

 private:
  // Offer the session kept for this server and trust, if any. One that does not load (saved by
  // another mbedTLS build) is dropped.
  void offer() {
    auto saved = sessions_->find(peer_);
    if (!saved) return;
    Session session;
    const auto* bytes = reinterpret_cast<const unsigned char*>(saved->data.data());
    if (mbedtls_ssl_session_load(&session.session, bytes, saved->data.size()) != 0 ||
        mbedtls_ssl_set_session(&ssl_, &session.session) != 0) {
      sessions_->forget(peer_);
      return;
    }
    offered_ = true;
  }

  // After a handshake: keep its session (with the ticket the server just issued) for the next.
  void keep_session() {
    if (sessions_ == nullptr) return;
    sessions_->count(offered_, resumed_);
    Session session;
    if (mbedtls_ssl_get_session(&ssl_, &session.session) != 0) return;
    // The server's certificate was checked in the full handshake and a resumption does not
    // look at it again: dropped, so that loading the session parses no certificate (and the
    // saved session is 1 KiB smaller).
    if (session.session.peer_cert != nullptr) {
      mbedtls_x509_crt_free(session.session.peer_cert);
      mbedtls_free(session.session.peer_cert);
      session.session.peer_cert = nullptr;
    }
    SavedSession saved = peer_;
    saved.data = save_session(session.session);
    if (saved.data.empty()) {
      sessions_->forget(peer_);
      return;
    }
    sessions_->put(std::move(saved));
  }

  std::string verify_failure() const {
    std::uint32_t flags = mbedtls_ssl_get_verify_result(&ssl_);
    std::string out = "the server certificate was refused:";
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
      out += " it is not signed by a CA in the CA file " + ca_file_ + ";";
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED) out += " it has expired (check the server's certificate and this device's clock);";
    if (flags & MBEDTLS_X509_BADCERT_FUTURE) out += " it is not valid yet (check this device's clock);";
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) out += " it is not made for the host name " + host_ + " (hostname mismatch);";
    std::uint32_t explained = MBEDTLS_X509_BADCERT_NOT_TRUSTED | MBEDTLS_X509_BADCERT_EXPIRED |
                              MBEDTLS_X509_BADCERT_FUTURE | MBEDTLS_X509_BADCERT_CN_MISMATCH;
    if (flags & ~explained) {
      std::array<char, 512> info{};
      mbedtls_x509_crt_verify_info(info.data(), info.size(), "", flags & ~explained);
      std::string text(info.data());
      for (auto& c : text)
        if (c == '\n') c = ';';
      out += " " + text;
    }
    if (!out.empty() && out.back() == ';') out.pop_back();
    return out;
  }

  // The time left for the current operation's socket I/O; nullopt once the deadline passed.
  std::optional<milliseconds> time_left() const {
    auto left = std::chrono::ceil<milliseconds>(deadline_ - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    return left;
  }

  static int bio_send(void* context, const unsigned char* data, std::size_t size) {
    auto& self = *static_cast<ClientSession*>(context);
    auto left = self.time_left();
    if (!left) {
      self.io_error_ = Error{Errc::timeout, "deadline passed"};
      return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    auto s = self.inner_->write_all(std::string_view(reinterpret_cast<const char*>(data), size), *left);
    if (!s) {
      self.io_error_ = s.error();
      return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    return static_cast<int>(size);
  }

  static int bio_recv(void* context, unsigned char* buffer, std::size_t size) {
    auto& self = *static_cast<ClientSession*>(context);
    auto left = self.time_left();
    if (!left) {
      self.io_error_ = Error{Errc::timeout, "deadline passed"};
      return MBEDTLS_ERR_NET_RECV_FAILED;
    }
    auto n = self.inner_->read_some(reinterpret_cast<char*>(buffer), size, *left);
    if (!n) {
      self.io_error_ = n.error();
      return MBEDTLS_ERR_NET_RECV_FAILED;
    }
    return static_cast<int>(*n);  // 0: the peer closed
  }

  std::unique_ptr<http::Transport> inner_;
  std::string url_;
  std::string ca_file_;
  std::string host_;
  std::shared_ptr<CaChain> ca_;
  mbedtls_ssl_config conf_;
  mbedtls_ssl_context ssl_;
  mbedtls_x509_crt own_cert_;
  mbedtls_pk_context own_key_;
  IpCheck ip_check_;
  SessionCache* sessions_ = nullptr;
  SavedSession peer_;  // this connection's server and trust (no data)
  bool resume_only_ = false;
  bool offered_ = false;
  bool resumed_ = false;
  Clock::time_point deadline_{};
  std::optional<Error> io_error_;
  bool handshake_done_ = false;
};

}  // namespace

std::optional<SavedSession> SessionCache::find(const SavedSession& peer) const {
  std::lock_guard lock(mutex_);
  for (const auto& s : sessions_)
    if (s.same_peer(peer)) return s;
  return std::nullopt;
}

void SessionCache::put(SavedSession session) {
  std::lock_guard lock(mutex_);
  std::erase_if(sessions_, [&](const SavedSession& s) { return s.same_peer(session); });
  sessions_.push_back(std::move(session));
}

void SessionCache::forget(const SavedSession& peer) {
  std::lock_guard lock(mutex_);
  std::erase_if(sessions_, [&](const SavedSession& s) { return s.same_peer(peer); });
}

std::vector<SavedSession> SessionCache::all() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

void SessionCache::count(bool offered, bool resumed) {
  std::lock_guard lock(mutex_);
  if (offered) ++counts_.offered;
  if (resumed) ++counts_.resumed;
  else ++counts_.full;
}

SessionCache::Counts SessionCache::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

Expected<std::unique_ptr<http::Transport>> client_handshake(std::unique_ptr<http::Transport> transport,
                                                            const std::string& host, std::uint16_t port,
                                                            std::string_view url, const ClientOptions& options,
                                                            milliseconds timeout) {
  auto session = std::make_unique<ClientSession>(std::move(transport), std::string(url), options.ca_file.string());
  if (auto s = session->setup(host, port, options); !s) return std::unexpected(s.error());
  if (auto s = session->handshake(timeout); !s) return std::unexpected(s.error());
  return std::unique_ptr<http::Transport>(std::move(session));
}

// ---------------------------------------------------------------------------------------------
// Server configuration.

ServerConfig::Impl::Impl() {
  mbedtls_ssl_config_init(&conf);
  mbedtls_x509_crt_init(&chain);
  mbedtls_pk_init(&key);
  mbedtls_x509_crt_init(&client_ca);
  mbedtls_ssl_ticket_init(&ticket);
}

ServerConfig::Impl::~Impl() {
  mbedtls_ssl_config_free(&conf);
  mbedtls_x509_crt_free(&chain);
  mbedtls_pk_free(&key);
  mbedtls_x509_crt_free(&client_ca);
  mbedtls_ssl_ticket_free(&ticket);
}

ServerConfig::ServerConfig() : impl_(std::make_unique<Impl>()) {}
ServerConfig::~ServerConfig() = default;

Expected<std::shared_ptr<const ServerConfig>> ServerConfig::load(const stdfs::path& cert_file,
                                                                 const stdfs::path& key_file,
                                                                 const stdfs::path& client_ca_file,
                                                                 std::chrono::seconds ticket_lifetime) {
  if (auto s = detail::ensure_random(); !s) return std::unexpected(s.error());
  std::shared_ptr<ServerConfig> config(new ServerConfig());
  auto& x = *config->impl_;
  if (auto s = load_certificates(x.chain, cert_file, "TLS certificate"); !s) return std::unexpected(s.error());
  if (auto s = load_key(x.key, key_file, "TLS key"); !s) return std::unexpected(s.error());
  if (auto s = check_pair(x.chain, x.key, cert_file, key_file); !s) return std::unexpected(s.error());
  int r = mbedtls_ssl_config_defaults(&x.conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
  if (r != 0) return make_error(Errc::internal, "TLS server configuration: " + describe_mbedtls_error(r));
  mbedtls_ssl_conf_min_version(&x.conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_rng(&x.conf, detail::random, nullptr);
  r = mbedtls_ssl_conf_own_cert(&x.conf, &x.chain, &x.key);
  if (r != 0)
    return make_error(Errc::invalid_argument, "TLS certificate " + cert_file.string() + ": " + describe_mbedtls_error(r));
  if (!client_ca_file.empty()) {
    if (auto s = load_certificates(x.client_ca, client_ca_file, "client CA file"); !s) return std::unexpected(s.error());
    mbedtls_ssl_conf_ca_chain(&x.conf, &x.client_ca, nullptr);
    mbedtls_ssl_conf_authmode(&x.conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  } else {
    mbedtls_ssl_conf_authmode(&x.conf, MBEDTLS_SSL_VERIFY_NONE);
  }
  if (ticket_lifetime.count() < 0 || ticket_lifetime > std::chrono::days(7))
    return make_error(Errc::invalid_argument, "TLS session ticket lifetime of " + std::to_string(ticket_lifetime.count()) +
                                                  " s: give 0 (no tickets) up to 7 days (RFC 5077's limit)");
  if (ticket_lifetime.count() > 0) {
    r = mbedtls_ssl_ticket_setup(&x.ticket, detail::random, nullptr, MBEDTLS_CIPHER_AES_256_GCM,
                                 static_cast<std::uint32_t>(ticket_lifetime.count()));
    if (r != 0) return make_error(Errc::internal, "TLS session tickets: " + describe_mbedtls_error(r));
    mbedtls_ssl_conf_session_tickets_cb(&x.conf, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &x.ticket);
  }
  return std::shared_ptr<const ServerConfig>(std::move(config));
}

}  // namespace eddy::tls
