/* proxy/session/tls.h: client TLS: the server-side SSL_CTX built from the client_tls_* keys (one
 * per config snapshot, shared by every worker), and the tls-server-end-point channel-binding data
 * of a TLS connection (RFC 5929) for SCRAM-SHA-256-PLUS. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct config;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

#define TLS_CBIND_MAX 64 /* EVP_MAX_MD_SIZE: the largest certificate hash */

/* Build the SSL_CTX for cfg's client_tls_* keys: certificate and key (checked against each
 * other), protocols, ciphers, and with verify-ca / verify-full the CA that must sign a client
 * certificate the client is then required to show. *out is NULL when client_tls_sslmode is
 * disable. The SSL_CTX is reference-counted by OpenSSL: every SSL made from it holds a reference,
 * so a TLS session outlives a reload that replaced its context. < 0 with err set on failure. */
int tls_ctx_load(const struct config *cfg, SSL_CTX **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Parse client_tls_protocols (pgbouncer's syntax) into a bit set: bit 0 TLSv1.0 .. bit 3
 * TLSv1.3. < 0 for an unknown word or an empty set. */
int tls_protocols_parse(const char *spec, unsigned *set) __attribute__((warn_unused_result));
/* The tls-server-end-point channel-binding data of ssl: the hash of the certificate pgdual showed,
 * with the certificate's signature hash (SHA-256 when that is MD5 or SHA-1). Returns its length
 * (<= TLS_CBIND_MAX), or < 0 when it cannot be determined (e.g. an Ed25519 certificate, whose
 * signature has no separate hash): SCRAM-SHA-256-PLUS is then not offered. */
int tls_cbind_data(SSL *ssl, uint8_t out[TLS_CBIND_MAX]) __attribute__((warn_unused_result));
/* The subject of ssl's peer certificate in one line, for the log ("" if none). */
void tls_peer_subject(SSL *ssl, char *buf, size_t n);
