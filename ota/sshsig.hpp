// OpenSSH public keys and SSHSIG signatures (PROTOCOL.sshsig), the scheme `git commit -S`
// uses with gpg.format=ssh. Parsing follows OpenSSH's sshkey.c/sshsig.c; the cryptography is
// libsodium's (Ed25519) and mbedTLS's (SHA-2, ECDSA, RSA). Used by ota/trust; errors carry a
// short reason only, the caller says which commit or file it was about.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.hpp"

namespace eddy::ota::sshsig {

// What Eddy can do with a key. OpenSSH knows more types (DSA, FIDO "sk-" keys and their
// certificates): those parse, compare and have fingerprints, but signatures by them are not
// verified here (`other`, `certificate`). Certificates of ed25519/ecdsa/rsa keys have the kind
// of their key and `cert` set.
enum class KeyKind { ed25519, ecdsa, rsa, other, certificate };

struct PublicKey;

// An OpenSSH certificate (PROTOCOL.certkeys) whose CA signature has been verified.
struct Certificate {
  static constexpr std::uint32_t user = 1;
  static constexpr std::uint32_t host = 2;
  std::uint32_t type = 0;
  std::string key_id;
  std::vector<std::string> principals;
  std::uint64_t valid_after = 0;
  std::uint64_t valid_before = 0;
  std::shared_ptr<const PublicKey> signature_key;  // the CA
};

struct PublicKey {
  std::string type;    // "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...
  std::string blob;    // the key in SSH wire format, as decoded from base64
  std::string plain_blob;  // for a certificate, the certified key alone; else == blob
  KeyKind kind = KeyKind::other;
  std::optional<Certificate> cert;
  // Parsed material of the keys Eddy verifies (big-endian, leading zeros stripped for RSA).
  std::string ed25519;   // 32 bytes
  std::string curve;     // "nistp256", "nistp384", "nistp521"
  std::string ec_point;  // SEC1 point as in the blob
  std::string rsa_e, rsa_n;

  // "SHA256:<base64 without padding>", as `ssh-keygen -l` prints it (of the certified key,
  // for a certificate).
  std::string fingerprint() const;
  // OpenSSH's sshkey_equal on plain keys: same type and same public material.
  bool same_key(const PublicKey& other) const;
};

// Type names OpenSSH reads in key files (sshkey_type_from_name); false for anything else.
bool is_known_key_type(std::string_view type);

// Parse a wire-format public key blob. Errors are Errc::invalid_argument with a reason.
Expected<PublicKey> parse_public_key(std::string_view blob);

struct Signature {
  PublicKey key;
  std::string name_space;  // "git" for Git commits
  std::string hash_alg;    // "sha256" or "sha512"
  std::string sig_blob;    // the key-type specific signature (string type, string data)
};

// Dearmor ("-----BEGIN SSH SIGNATURE-----" ...) and parse an SSHSIG blob (sshsig_dearmor +
// the parse part of sshsig_wrap_verify). Errors are Errc::bad_signature with a reason.
Expected<Signature> parse_armored(std::string_view armored);

// sshsig_verifyb: hash `message` with the signature's hash algorithm, check the namespace
// equals `expect_namespace`, and verify the signature with the embedded key. Errors are
// Errc::bad_signature (or Errc::unsupported for key types Eddy does not verify).
Status verify(const Signature& signature, std::string_view message, std::string_view expect_namespace);

// Base64 decode (whitespace and newlines allowed, as OpenSSH's b64_pton); nullopt-like error
// as Errc::invalid_argument.
Expected<std::string> base64_decode(std::string_view text);

}  // namespace eddy::ota::sshsig
