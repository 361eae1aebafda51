// mbedTLS pieces shared by platform/tls.cpp and platform/tls_stream.cpp. Include only from
// platform/*.cpp: nothing else sees mbedTLS types.
#pragma once

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include <cstddef>

#include "platform/tls.hpp"

namespace eddy::tls {

namespace detail {

// The process's random generator for mbedTLS (f_rng): one CTR-DRBG seeded once from the
// entropy pool, its calls serialized by a mutex (a CTR-DRBG is not safe to share unguarded).
// `context` is unused. ensure_random() seeds it and says whether that worked.
int random(void* context, unsigned char* output, std::size_t length);
Status ensure_random();

}  // namespace detail

struct ServerConfig::Impl {
  Impl();
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  mbedtls_ssl_config conf;
  mbedtls_x509_crt chain;
  mbedtls_pk_context key;
  mbedtls_x509_crt client_ca;
  mbedtls_ssl_ticket_context ticket;  // its own mutex (MBEDTLS_THREADING_C) guards its keys
};

}  // namespace eddy::tls
