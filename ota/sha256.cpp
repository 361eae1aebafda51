#include "ota/sha256.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <array>

#include "platform/hex.hpp"

namespace eddy::ota {

namespace {

std::string openssl_error(std::string_view what) {
  std::string message = "SHA-256 (OpenSSL libcrypto): " + std::string(what) + " failed";
  if (unsigned long code = ERR_get_error(); code != 0) {
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    message += ": ";
    message += text.data();
  }
  ERR_clear_error();
  return message + " (check the libssl3 package and /etc/ssl/openssl.cnf)";
}

}  // namespace

struct Sha256::Impl {
  EVP_MD_CTX* context = nullptr;
  // The first failure; update() does nothing after it and finish_hex() reports it.
  std::string failure;
  bool finished = false;
  ~Impl() { EVP_MD_CTX_free(context); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->context = EVP_MD_CTX_new();
  if (!impl_->context) {
    impl_->failure = openssl_error("EVP_MD_CTX_new");
  } else if (EVP_DigestInit_ex(impl_->context, EVP_sha256(), nullptr) != 1) {
    impl_->failure = openssl_error("EVP_DigestInit_ex");
  }
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const char* data, std::size_t size) {
  if (!impl_->failure.empty() || size == 0) return;
  if (impl_->finished) {
    impl_->failure = "SHA-256: update after finish_hex (a bug in the caller)";
  } else if (EVP_DigestUpdate(impl_->context, data, size) != 1) {
    impl_->failure = openssl_error("EVP_DigestUpdate");
  }
}

Expected<std::string> Sha256::finish_hex() {
  if (!impl_->failure.empty()) return make_error(Errc::internal, impl_->failure);
  if (impl_->finished) return make_error(Errc::internal, "SHA-256: finish_hex called twice (a bug in the caller)");
  impl_->finished = true;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(impl_->context, digest.data(), &length) != 1 || length != 32)
    return make_error(Errc::internal, openssl_error("EVP_DigestFinal_ex"));
  return to_hex(digest.data(), length);
}

Expected<std::string> Sha256::hex_of(std::string_view data) {
  Sha256 sha;
  sha.update(data.data(), data.size());
  return sha.finish_hex();
}

}  // namespace eddy::ota
