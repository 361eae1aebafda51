// TLS through mbedTLS 2.28: the client side under http_client's https:// transport, and the
// configuration a server needs (certificate and key), shared by every connection it serves.
// The asynchronous server stream over an Asio socket is in platform/tls_stream.hpp (Asio types,
// platform code only); this header has none.
//
// Protocol: TLS 1.2 only. Debian's mbedTLS 2.28 is built without its experimental TLS 1.3, so
// 1.2 is both the minimum and the maximum; the ciphersuites are mbedTLS's defaults (AEAD and
// forward-secret first). Renegotiation is off (mbedTLS's default).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::http {
class Transport;
}

namespace eddy::tls {

// Debian's bundle of the system's trusted CAs (package ca-certificates).
inline const std::filesystem::path system_ca_file = "/etc/ssl/certs/ca-certificates.crt";

struct ClientOptions {
  std::filesystem::path ca_file = system_ca_file;  // PEM, one or more CA certificates
  // Optional client certificate (PEM chain) and its key, for mutual TLS; both or neither.
  std::filesystem::path cert_file;
  std::filesystem::path key_file;
};

// Run a TLS client handshake over a connected byte transport within `timeout` and return the
// TLS session as a Transport (reads and writes with their own deadlines, like the socket's).
// `host` is checked against the server certificate (DNS name or IP address in its SAN);
// `url` only names the connection in error messages.
// Errors: Errc::network for a certificate that is not trusted, expired or made for another
// host (the message says which, and names the URL and the CA file), and for a peer that does
// not speak TLS; Errc::timeout when the handshake does not finish in time; Errc::not_found /
// Errc::invalid_argument for unreadable or malformed CA, certificate or key files.
Expected<std::unique_ptr<http::Transport>> client_handshake(std::unique_ptr<http::Transport> transport,
                                                            const std::string& host, std::string_view url,
                                                            const ClientOptions& options,
                                                            std::chrono::milliseconds timeout);

// A server's certificate and key, loaded once and shared (read-only) by every connection.
class ServerConfig {
 public:
  // cert_file: PEM, the server certificate first, then intermediates. key_file: its PEM key
  // (not encrypted). client_ca_file, when given, makes client certificates required and
  // checked against it (mutual TLS). Errors name the file: Errc::not_found when missing,
  // Errc::invalid_argument when it is not a PEM certificate/key or the key does not match.
  static Expected<std::shared_ptr<const ServerConfig>> load(const std::filesystem::path& cert_file,
                                                            const std::filesystem::path& key_file,
                                                            const std::filesystem::path& client_ca_file = {});
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
