// TLS through mbedTLS 2.28: the client side under http_client's https:// transport, and the
// configuration a server needs (certificate and key), shared by every connection it serves.
// The asynchronous server stream over an Asio socket is in platform/tls_stream.hpp (Asio types,
// platform code only); this header has none.
//
// Resumption (RFC 5077 session tickets): a server hands its clients tickets sealed with a key
// that only it knows (rotated every ticket lifetime, a day by default), so resuming needs no
// per-client state on the server; a client that keeps the session of a full handshake
// (SessionCache) resumes it later with an abbreviated handshake: no ECDHE, no certificate
// parsing or checking, about a tenth of the CPU on a small board. A server that refuses the
// ticket (restarted with a new ticket key, the ticket expired) makes it a full handshake.
//
// Protocol: TLS 1.2 only. Debian's mbedTLS 2.28 is built without its experimental TLS 1.3, so
// 1.2 is both the minimum and the maximum; the ciphersuites are mbedTLS's defaults (AEAD and
// forward-secret first). Renegotiation is off (mbedTLS's default).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.hpp"

namespace eddy::http {
class Transport;
}

namespace eddy::tls {

// Debian's bundle of the system's trusted CAs (package ca-certificates).
inline const std::filesystem::path system_ca_file = "/etc/ssl/certs/ca-certificates.crt";

// A client's TLS session after a handshake, to resume later. It is bound to what the full
// handshake checked: the server (host and port), the CA file (path, size and modification time:
// a replaced CA file is new trust, so its sessions are not offered) and the client certificate.
// `data` is mbedtls_ssl_session_save's serialization and holds the session's master secret:
// keep it in memory or in files only its owner reads (0600), and never log it.
struct SavedSession {
  std::string host;
  std::uint16_t port = 0;
  std::string ca_file;      // the CA file's path
  std::string ca_stamp;     // "<size>:<mtime ns>" of the CA file when the session was made
  std::string client_cert;  // "" without a client certificate
  std::string data;

  // Whether this session may be offered to `other`'s server under `other`'s trust.
  bool same_peer(const SavedSession& other) const {
    return host == other.host && port == other.port && ca_file == other.ca_file && ca_stamp == other.ca_stamp &&
           client_cert == other.client_cert;
  }
};

// The sessions a client keeps to resume, one per server and trust (SavedSession's binding);
// thread-safe. It counts handshakes, as mbedTLS tells them: full, or abbreviated (resumed).
class SessionCache {
 public:
  struct Counts {
    std::uint64_t offered = 0;  // handshakes that offered a saved session
    std::uint64_t resumed = 0;  // ... and that the server resumed (an abbreviated handshake)
    std::uint64_t full = 0;     // full handshakes (none offered, or the server refused it)
  };

  // The session to offer to `peer`'s server (its `data` ignored), if one is kept.
  std::optional<SavedSession> find(const SavedSession& peer) const;
  // Keep `session`, replacing the one kept for the same server and trust.
  void put(SavedSession session);
  // Drop the session kept for `peer`'s server and trust.
  void forget(const SavedSession& peer);
  // Every session kept, the one kept last at the back.
  std::vector<SavedSession> all() const;
  void count(bool offered, bool resumed);
  Counts counts() const;

 private:
  mutable std::mutex mutex_;
  std::vector<SavedSession> sessions_;
  Counts counts_;
};

struct ClientOptions {
  std::filesystem::path ca_file = system_ca_file;  // PEM, one or more CA certificates
  // Optional client certificate (PEM chain) and its key, for mutual TLS; both or neither.
  std::filesystem::path cert_file;
  std::filesystem::path key_file;
  // Resumption: offer the session `sessions` keeps for this server and trust, and keep the
  // session of each successful handshake there. Null: every handshake is a full one.
  SessionCache* sessions = nullptr;
  // Abbreviated handshakes only: with no session to offer, or when the server does not resume
  // it, stop (Errc::conflict) before any certificate parsing or key exchange. For a caller
  // that has a more expensive way around anyway (eddyd: its update worker) and must stay small.
  bool resume_only = false;
};

// Run a TLS client handshake over a connected byte transport within `timeout` and return the
// TLS session as a Transport (reads and writes with their own deadlines, like the socket's).
// `host` is checked against the server certificate (DNS name or IP address in its SAN);
// `host` and `port` choose the session offered from options.sessions; `url` only names the
// connection in error messages.
// Errors: Errc::network for a certificate that is not trusted, expired or made for another
// host (the message says which, and names the URL and the CA file), and for a peer that does
// not speak TLS; Errc::timeout when the handshake does not finish in time; Errc::not_found /
// Errc::invalid_argument for unreadable or malformed CA, certificate or key files.
Expected<std::unique_ptr<http::Transport>> client_handshake(std::unique_ptr<http::Transport> transport,
                                                            const std::string& host, std::uint16_t port,
                                                            std::string_view url, const ClientOptions& options,
                                                            std::chrono::milliseconds timeout);

// A server's certificate and key, loaded once and shared (read-only) by every connection.
class ServerConfig {
 public:
  // cert_file: PEM, the server certificate first, then intermediates. key_file: its PEM key
  // (not encrypted). client_ca_file, when given, makes client certificates required and
  // checked against it (mutual TLS). Errors name the file: Errc::not_found when missing,
  // Errc::invalid_argument when it is not a PEM certificate/key or the key does not match.
  // Session tickets: sealed with AES-256-GCM under a random key made here (it never leaves the
  // process: a restarted server refuses older tickets, which costs each client one full
  // handshake); mbedTLS makes a new key every `ticket_lifetime` and accepts tickets of the
  // previous one, and refuses a ticket whose session is older than `ticket_lifetime`.
  // A lifetime of zero: no tickets.
  static Expected<std::shared_ptr<const ServerConfig>> load(const std::filesystem::path& cert_file,
                                                            const std::filesystem::path& key_file,
                                                            const std::filesystem::path& client_ca_file = {},
                                                            std::chrono::seconds ticket_lifetime = default_ticket_lifetime);
  static constexpr std::chrono::seconds default_ticket_lifetime = std::chrono::hours(24);
  ~ServerConfig();
  ServerConfig(const ServerConfig&) = delete;
  ServerConfig& operator=(const ServerConfig&) = delete;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  ServerConfig();
  std::unique_ptr<Impl> impl_;
};

// mbedTLS's text for one of its error codes ("X509 - Certificate verification failed ...").
std::string describe_mbedtls_error(int code);

}  // namespace eddy::tls
