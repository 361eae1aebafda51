#include "ota/sshsig.hpp"

#include <mbedtls/base64.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <memory>

namespace eddy::ota::sshsig {
namespace {

constexpr std::string_view kMagic = "SSHSIG";
constexpr std::uint32_t kSigVersion = 1;
constexpr std::string_view kBeginSignature = "-----BEGIN SSH SIGNATURE-----\n";
constexpr std::string_view kEndSignature = "\n-----END SSH SIGNATURE-----";
constexpr std::string_view kCertSuffix = "-cert-v01@openssh.com";
// OpenSSH refuses RSA keys below 1024 bits (SSH_RSA_MINIMUM_MODULUS_SIZE) and above 16384.
constexpr std::size_t kRsaMinBits = 1024;
constexpr std::size_t kRsaMaxBits = 16384;

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// Reads the SSH wire encoding (RFC 4251 section 5): uint32, string, mpint.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : all_(data), data_(data) {}

  bool u64(std::uint64_t& out) {
    std::uint32_t hi = 0, lo = 0;
    if (!u32(hi) || !u32(lo)) return false;
    out = (std::uint64_t{hi} << 32) | lo;
    return true;
  }
  // Bytes read so far.
  std::size_t offset() const { return static_cast<std::size_t>(data_.data() - all_.data()); }

  bool u32(std::uint32_t& out) {
    if (data_.size() < 4) return false;
    out = (std::uint32_t{static_cast<unsigned char>(data_[0])} << 24) |
          (std::uint32_t{static_cast<unsigned char>(data_[1])} << 16) |
          (std::uint32_t{static_cast<unsigned char>(data_[2])} << 8) |
          std::uint32_t{static_cast<unsigned char>(data_[3])};
    data_.remove_prefix(4);
    return true;
  }
  bool string(std::string_view& out) {
    std::uint32_t len = 0;
    if (!u32(len) || data_.size() < len) return false;
    out = data_.substr(0, len);
    data_.remove_prefix(len);
    return true;
  }
  // A string without embedded NUL (sshbuf_get_cstring).
  bool cstring(std::string_view& out) {
    return string(out) && out.find('\0') == std::string_view::npos;
  }
  // A non-negative mpint with leading zeros stripped (sshbuf_get_bignum2_bytes_direct).
  bool mpint(std::string_view& out) {
    if (!string(out)) return false;
    if (!out.empty() && (static_cast<unsigned char>(out[0]) & 0x80) != 0) return false;
    while (!out.empty() && out[0] == '\0') out.remove_prefix(1);
    return out.size() <= kRsaMaxBits / 8;
  }
  bool empty() const { return data_.empty(); }

 private:
  std::string_view all_;
  std::string_view data_;
};

void put_string(std::string& out, std::string_view s) {
  auto n = static_cast<std::uint32_t>(s.size());
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.append(s);
}

// An mpint from big-endian bytes without leading zeros (positive).
void put_mpint(std::string& out, std::string_view magnitude) {
  if (!magnitude.empty() && (static_cast<unsigned char>(magnitude[0]) & 0x80) != 0)
    put_string(out, std::string(1, '\0') + std::string(magnitude));
  else
    put_string(out, magnitude);
}

std::string sha1(std::string_view data) {
  std::string out(20, '\0');
  mbedtls_sha1_ret(bytes(data), data.size(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  mbedtls_sha256_ret(bytes(data), data.size(), reinterpret_cast<unsigned char*>(out.data()), 0);
  return out;
}

std::string sha384(std::string_view data) {
  std::string out(48, '\0');
  mbedtls_sha512_ret(bytes(data), data.size(), reinterpret_cast<unsigned char*>(out.data()), 1);
  return out;
}

std::string sha512(std::string_view data) {
  std::string out(64, '\0');
  mbedtls_sha512_ret(bytes(data), data.size(), reinterpret_cast<unsigned char*>(out.data()), 0);
  return out;
}

std::string base64_encode(std::string_view data) {
  std::size_t olen = 0;
  mbedtls_base64_encode(nullptr, 0, &olen, bytes(data), data.size());
  std::string out(olen, '\0');
  if (mbedtls_base64_encode(reinterpret_cast<unsigned char*>(out.data()), out.size(), &olen, bytes(data),
                            data.size()) != 0)
    return {};
  out.resize(olen);
  return out;
}

mbedtls_ecp_group_id curve_group(std::string_view curve) {
  if (curve == "nistp256") return MBEDTLS_ECP_DP_SECP256R1;
  if (curve == "nistp384") return MBEDTLS_ECP_DP_SECP384R1;
  if (curve == "nistp521") return MBEDTLS_ECP_DP_SECP521R1;
  return MBEDTLS_ECP_DP_NONE;
}

// RAII holders for the mbedTLS contexts used below.
struct EcKey {
  mbedtls_ecp_group group;
  mbedtls_ecp_point point;
  EcKey() {
    mbedtls_ecp_group_init(&group);
    mbedtls_ecp_point_init(&point);
  }
  ~EcKey() {
    mbedtls_ecp_point_free(&point);
    mbedtls_ecp_group_free(&group);
  }
  EcKey(const EcKey&) = delete;
  EcKey& operator=(const EcKey&) = delete;
  // Load the curve and the point, and check the point is a valid public key on it.
  bool load(std::string_view curve, std::string_view sec1) {
    auto id = curve_group(curve);
    return id != MBEDTLS_ECP_DP_NONE && mbedtls_ecp_group_load(&group, id) == 0 &&
           mbedtls_ecp_point_read_binary(&group, &point, bytes(sec1), sec1.size()) == 0 &&
           mbedtls_ecp_check_pubkey(&group, &point) == 0;
  }
};

struct Mpi {
  mbedtls_mpi value;
  Mpi() { mbedtls_mpi_init(&value); }
  ~Mpi() { mbedtls_mpi_free(&value); }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;
};

struct RsaKey {
  mbedtls_rsa_context ctx;
  RsaKey() { mbedtls_rsa_init(&ctx, MBEDTLS_RSA_PKCS_V15, 0); }
  ~RsaKey() { mbedtls_rsa_free(&ctx); }
  RsaKey(const RsaKey&) = delete;
  RsaKey& operator=(const RsaKey&) = delete;
  bool load(std::string_view n, std::string_view e) {
    return mbedtls_rsa_import_raw(&ctx, bytes(n), n.size(), nullptr, 0, nullptr, 0, nullptr, 0, bytes(e),
                                  e.size()) == 0 &&
           mbedtls_rsa_complete(&ctx) == 0 && mbedtls_rsa_check_pubkey(&ctx) == 0;
  }
};

std::size_t bit_length(std::string_view big_endian) {
  if (big_endian.empty()) return 0;
  auto top = static_cast<unsigned char>(big_endian[0]);
  std::size_t bits = 0;
  while (top != 0) {
    ++bits;
    top = static_cast<unsigned char>(top >> 1);
  }
  return (big_endian.size() - 1) * 8 + bits;
}

Status fail(std::string reason) { return make_error(Errc::bad_signature, std::move(reason)); }

Status verify_ed25519(const PublicKey& key, std::string_view sig_blob, std::string_view data) {
  WireReader r(sig_blob);
  std::string_view type, sig;
  if (!r.cstring(type) || !r.string(sig) || !r.empty()) return fail("malformed ssh-ed25519 signature");
  if (type != "ssh-ed25519") return fail("signature type `" + std::string(type) + "` does not match the ssh-ed25519 key");
  if (sig.size() != crypto_sign_ed25519_BYTES) return fail("ssh-ed25519 signature has the wrong length");
  static const int sodium_ready = sodium_init();
  if (sodium_ready < 0) return make_error(Errc::internal, "libsodium failed to initialise");
  if (crypto_sign_verify_detached(bytes(sig), bytes(data), data.size(), bytes(key.ed25519)) != 0)
    return fail("ssh-ed25519 signature does not verify");
  return {};
}

Status verify_ecdsa(const PublicKey& key, std::string_view sig_blob, std::string_view data) {
  WireReader r(sig_blob);
  std::string_view type, inner, r_bytes, s_bytes;
  if (!r.cstring(type) || !r.string(inner) || !r.empty()) return fail("malformed ECDSA signature");
  if (type != "ecdsa-sha2-" + key.curve)
    return fail("signature type `" + std::string(type) + "` does not match the " + key.type + " key");
  WireReader ri(inner);
  if (!ri.mpint(r_bytes) || !ri.mpint(s_bytes) || !ri.empty()) return fail("malformed ECDSA signature values");
  std::string digest = key.curve == "nistp256" ? sha256(data) : key.curve == "nistp384" ? sha384(data) : sha512(data);
  EcKey ec;
  Mpi rv, sv;
  if (!ec.load(key.curve, key.ec_point)) return fail("invalid ECDSA public key");
  if (mbedtls_mpi_read_binary(&rv.value, bytes(r_bytes), r_bytes.size()) != 0 ||
      mbedtls_mpi_read_binary(&sv.value, bytes(s_bytes), s_bytes.size()) != 0)
    return fail("malformed ECDSA signature values");
  if (mbedtls_ecdsa_verify(&ec.group, bytes(digest), digest.size(), &ec.point, &rv.value, &sv.value) != 0)
    return fail(key.type + " signature does not verify");
  return {};
}

Status verify_rsa(const PublicKey& key, std::string_view sig_blob, std::string_view data, bool allow_sha1) {
  WireReader r(sig_blob);
  std::string_view type, sig;
  if (!r.cstring(type) || !r.string(sig) || !r.empty()) return fail("malformed RSA signature");
  // sshsig.c allows only rsa-sha2-512 and rsa-sha2-256 (never SHA-1 `ssh-rsa`) in SSHSIG.
  std::string digest;
  mbedtls_md_type_t md = MBEDTLS_MD_NONE;
  if (type == "rsa-sha2-512") {
    digest = sha512(data);
    md = MBEDTLS_MD_SHA512;
  } else if (type == "rsa-sha2-256") {
    digest = sha256(data);
    md = MBEDTLS_MD_SHA256;
  } else if (type == "ssh-rsa" && allow_sha1) {
    digest = sha1(data);
    md = MBEDTLS_MD_SHA1;
  } else {
    return fail("RSA signature algorithm `" + std::string(type) + "` is not allowed (rsa-sha2-512 or rsa-sha2-256)");
  }
  RsaKey rsa;
  if (!rsa.load(key.rsa_n, key.rsa_e)) return fail("invalid RSA public key");
  std::size_t modlen = mbedtls_rsa_get_len(&rsa.ctx);
  if (sig.size() > modlen) return fail("RSA signature is longer than the modulus");
  // OpenSSH left-pads a short signature with zeros (ssh_rsa_verify); so do we.
  std::string padded(modlen - sig.size(), '\0');
  padded.append(sig);
  if (mbedtls_rsa_pkcs1_verify(&rsa.ctx, nullptr, nullptr, MBEDTLS_RSA_PUBLIC, md,
                               static_cast<unsigned>(digest.size()), bytes(digest), bytes(padded)) != 0)
    return fail(std::string(type) + " signature does not verify");
  return {};
}

// sshkey_verify on plain key material. allow_sha1: `ssh-rsa` signatures, which OpenSSH still
// accepts from a certificate's CA (cert_parse) but never inside SSHSIG.
Status verify_raw(const PublicKey& key, std::string_view sig_blob, std::string_view data, bool allow_sha1) {
  switch (key.kind) {
    case KeyKind::ed25519: return verify_ed25519(key, sig_blob, data);
    case KeyKind::ecdsa: return verify_ecdsa(key, sig_blob, data);
    case KeyKind::rsa: return verify_rsa(key, sig_blob, data, allow_sha1);
    case KeyKind::other:
    case KeyKind::certificate: break;
  }
  return make_error(Errc::unsupported, "signatures by " + key.type + " keys are not supported");
}

// The public material of a plain key type, read from `r` into `key` (sshkey_from_blob_internal).
// Returns an error reason, empty on success.
std::string read_material(WireReader& r, std::string_view plain_type, PublicKey& key) {
  const std::string name(plain_type);
  if (plain_type == "ssh-ed25519") {
    std::string_view pk;
    if (!r.string(pk) || pk.size() != crypto_sign_ed25519_PUBLICKEYBYTES) return "malformed ssh-ed25519 key";
    key.kind = KeyKind::ed25519;
    key.ed25519 = std::string(pk);
    key.plain_blob.clear();
    put_string(key.plain_blob, plain_type);
    put_string(key.plain_blob, pk);
    return {};
  }
  if (plain_type == "ecdsa-sha2-nistp256" || plain_type == "ecdsa-sha2-nistp384" ||
      plain_type == "ecdsa-sha2-nistp521") {
    std::string_view curve, point;
    if (!r.cstring(curve) || !r.string(point)) return "malformed " + name + " key";
    if ("ecdsa-sha2-" + std::string(curve) != plain_type)
      return "curve `" + std::string(curve) + "` does not match key type " + name;
    EcKey ec;
    if (!ec.load(curve, point)) return "invalid " + name + " public point";
    key.kind = KeyKind::ecdsa;
    key.curve = std::string(curve);
    key.ec_point = std::string(point);
    key.plain_blob.clear();
    put_string(key.plain_blob, plain_type);
    put_string(key.plain_blob, curve);
    put_string(key.plain_blob, point);
    return {};
  }
  if (plain_type == "ssh-rsa") {
    std::string_view e, n;
    if (!r.mpint(e) || !r.mpint(n)) return "malformed ssh-rsa key";
    auto bits = bit_length(n);
    if (bits < kRsaMinBits || bits > kRsaMaxBits)
      return "ssh-rsa key of " + std::to_string(bits) + " bits (OpenSSH accepts 1024 to 16384)";
    RsaKey rsa;
    if (!rsa.load(n, e)) return "invalid ssh-rsa key";
    key.kind = KeyKind::rsa;
    key.rsa_e = std::string(e);
    key.rsa_n = std::string(n);
    key.plain_blob.clear();
    put_string(key.plain_blob, plain_type);
    put_mpint(key.plain_blob, e);
    put_mpint(key.plain_blob, n);
    return {};
  }
  return "unsupported key type `" + name + "`";
}

// A sequence of (string name, string data) pairs: critical options and extensions.
bool well_formed_options(std::string_view packed) {
  WireReader r(packed);
  while (!r.empty()) {
    std::string_view name, data;
    if (!r.cstring(name) || !r.string(data)) return false;
  }
  return true;
}

}  // namespace

Expected<std::string> base64_decode(std::string_view text) {
  std::string compact;
  compact.reserve(text.size());
  for (char c : text)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact.push_back(c);
  // b64_pton wants whole 4-character groups (padded with `=`).
  if (compact.empty() || compact.size() % 4 != 0) return make_error(Errc::invalid_argument, "invalid base64");
  std::size_t olen = 0;
  int rc = mbedtls_base64_decode(nullptr, 0, &olen, bytes(compact), compact.size());
  if (rc == MBEDTLS_ERR_BASE64_INVALID_CHARACTER) return make_error(Errc::invalid_argument, "invalid base64");
  std::string out(olen, '\0');
  if (mbedtls_base64_decode(reinterpret_cast<unsigned char*>(out.data()), out.size(), &olen, bytes(compact),
                            compact.size()) != 0)
    return make_error(Errc::invalid_argument, "invalid base64");
  out.resize(olen);
  return out;
}

bool is_known_key_type(std::string_view type) {
  static constexpr std::array<std::string_view, 9> plain = {
      "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
      "ssh-dss", "sk-ecdsa-sha2-nistp256@openssh.com", "sk-ssh-ed25519@openssh.com", "ssh-xmss@openssh.com"};
  for (auto name : plain) {
    if (type == name) return true;
    // Certificates: "<plain name without @openssh.com>-cert-v01@openssh.com".
    std::string base(name);
    if (auto at = base.find("@openssh.com"); at != std::string::npos) base.erase(at);
    if (type == base + std::string(kCertSuffix)) return true;
  }
  return false;
}

std::string PublicKey::fingerprint() const {
  std::string b64 = base64_encode(sha256(plain_blob));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

bool PublicKey::same_key(const PublicKey& other) const {
  if (type != other.type || kind != other.kind) return false;
  if (cert || other.cert) return blob == other.blob;
  switch (kind) {
    case KeyKind::ed25519: return ed25519 == other.ed25519;
    case KeyKind::ecdsa: return curve == other.curve && ec_point == other.ec_point;
    case KeyKind::rsa: return rsa_e == other.rsa_e && rsa_n == other.rsa_n;
    case KeyKind::other:
    case KeyKind::certificate: return blob == other.blob;
  }
  return false;
}

Expected<PublicKey> parse_public_key(std::string_view blob) {
  auto bad = [](std::string reason) { return make_error(Errc::invalid_argument, std::move(reason)); };
  WireReader r(blob);
  std::string_view type;
  if (!r.cstring(type)) return bad("truncated key blob");
  PublicKey key;
  key.type = std::string(type);
  key.blob = std::string(blob);
  key.plain_blob = key.blob;
  if (!is_known_key_type(type)) return bad("unknown key type `" + key.type + "`");
  if (!type.ends_with(kCertSuffix)) {
    if (type != "ssh-ed25519" && type != "ssh-rsa" && !type.starts_with("ecdsa-sha2-nistp")) return key;  // other
    if (auto why = read_material(r, type, key); !why.empty()) return bad(why);
    if (!r.empty()) return bad("trailing data after the " + key.type + " key");
    return key;
  }

  // Certificate: nonce, certified key, serial, type, key id, principals, validity, critical
  // options, extensions, reserved, CA key, CA signature over everything before it (cert_parse).
  std::string plain_type(type.substr(0, type.size() - kCertSuffix.size()));
  if (plain_type != "ssh-ed25519" && plain_type != "ssh-rsa" && !plain_type.starts_with("ecdsa-sha2-nistp")) {
    key.kind = KeyKind::certificate;  // DSA or FIDO certificate: known, not verified here
    return key;
  }
  std::string_view nonce;
  if (!r.string(nonce)) return bad("malformed certificate");
  if (auto why = read_material(r, plain_type, key); !why.empty()) return bad("certificate: " + why);
  Certificate cert;
  std::uint64_t serial = 0;
  std::string_view key_id, principals, critical, extensions, reserved, ca_blob, ca_sig;
  if (!r.u64(serial) || !r.u32(cert.type) || !r.cstring(key_id) || !r.string(principals) ||
      !r.u64(cert.valid_after) || !r.u64(cert.valid_before) || !r.string(critical) || !r.string(extensions) ||
      !r.string(reserved) || !r.string(ca_blob))
    return bad("malformed certificate");
  const std::size_t signed_len = r.offset();
  if (!r.string(ca_sig) || !r.empty()) return bad("malformed certificate signature");
  if (cert.type != Certificate::user && cert.type != Certificate::host)
    return bad("certificate of unknown type " + std::to_string(cert.type));
  cert.key_id = std::string(key_id);
  WireReader pr(principals);
  while (!pr.empty()) {
    std::string_view p;
    if (!pr.cstring(p)) return bad("malformed certificate principals");
    if (cert.principals.size() >= 256) return bad("certificate has too many principals");
    cert.principals.emplace_back(p);
  }
  if (!well_formed_options(critical) || !well_formed_options(extensions))
    return bad("malformed certificate options");
  auto ca = parse_public_key(ca_blob);
  if (!ca) return bad("certificate CA key: " + ca.error().message);
  if (ca->cert) return bad("certificate signed by another certificate");
  if (auto st = verify_raw(*ca, ca_sig, blob.substr(0, signed_len), true); !st)
    return bad("certificate signature by its CA does not verify: " + st.error().message);
  cert.signature_key = std::make_shared<const PublicKey>(std::move(*ca));
  key.cert = std::move(cert);
  return key;
}

Expected<Signature> parse_armored(std::string_view armored) {
  auto bad = [](std::string reason) { return make_error(Errc::bad_signature, std::move(reason)); };
  if (!armored.starts_with(kBeginSignature)) return bad("missing \"-----BEGIN SSH SIGNATURE-----\" header");
  armored.remove_prefix(kBeginSignature.size());
  auto end = armored.find(kEndSignature);
  if (end == std::string_view::npos) return bad("missing \"-----END SSH SIGNATURE-----\" footer");
  auto blob = base64_decode(armored.substr(0, end));
  if (!blob) return bad("signature is not valid base64");

  if (!std::string_view(*blob).starts_with(kMagic)) return bad("not an SSHSIG signature (bad magic)");
  WireReader r(std::string_view(*blob).substr(kMagic.size()));
  std::uint32_t version = 0;
  if (!r.u32(version)) return bad("truncated SSHSIG signature");
  if (version > kSigVersion) return bad("SSHSIG version " + std::to_string(version) + " is newer than supported (1)");
  std::string_view key_blob, ns, reserved, hash_alg, sig;
  if (!r.string(key_blob) || !r.cstring(ns) || !r.string(reserved) || !r.cstring(hash_alg) || !r.string(sig))
    return bad("truncated SSHSIG signature");
  if (!r.empty()) return bad("SSHSIG signature has trailing data");
  auto key = parse_public_key(key_blob);
  if (!key) return bad("signing key: " + key.error().message);
  Signature out;
  out.key = std::move(*key);
  out.name_space = std::string(ns);
  out.hash_alg = std::string(hash_alg);
  out.sig_blob = std::string(sig);
  return out;
}

Status verify(const Signature& signature, std::string_view message, std::string_view expect_namespace) {
  std::string digest;
  if (signature.hash_alg == "sha512") digest = sha512(message);
  else if (signature.hash_alg == "sha256") digest = sha256(message);
  else return fail("unsupported hash algorithm `" + signature.hash_alg + "` (sha256 or sha512)");
  if (signature.name_space != expect_namespace)
    return fail("signature namespace is `" + signature.name_space + "`, expected `" + std::string(expect_namespace) + "`");

  // The signed data of PROTOCOL.sshsig: MAGIC, namespace, reserved, hash algorithm, H(message).
  std::string to_verify(kMagic);
  put_string(to_verify, expect_namespace);
  put_string(to_verify, "");
  put_string(to_verify, signature.hash_alg);
  put_string(to_verify, digest);

  return verify_raw(signature.key, signature.sig_blob, to_verify, false);
}

}  // namespace eddy::ota::sshsig
