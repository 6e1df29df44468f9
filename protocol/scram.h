/* protocol/scram.h: SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: server side for client
 * authentication, client side for tests and backend logins. Pure: no I/O; randomness from OpenSSL.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN  32 /* SHA-256 */
#define SCRAM_SALT_MAX 64
#define SCRAM_EPROTO   (-2001) /* malformed SCRAM message or verifier */
#define SCRAM_EAUTH    (-2002) /* wrong proof: authentication failed */
#define SCRAM_ENOMEM   (-2003)
#define SCRAM_ECRYPTO  (-2004) /* OpenSSL failure */
/* Channel binding refused: a client saying "y" (it binds but thinks we do not) while we offered
 * SCRAM-SHA-256-PLUS (a downgrade), SCRAM-SHA-256-PLUS without binding or binding without it,
 * or binding data that is not ours (another certificate: a man in the middle). */
#define SCRAM_ECBIND   (-2005)

/* What the server stores for a user (PostgreSQL's rolpassword "SCRAM-SHA-256$..."). */
struct scram_secret {
    int iterations;
    uint8_t salt[SCRAM_SALT_MAX];
    size_t salt_len;
    uint8_t stored_key[SCRAM_KEY_LEN];
    uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parse "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
int scram_secret_parse(const char *verifier, struct scram_secret *out)
    __attribute__((warn_unused_result));
/* Derive a secret from a plain password with a fresh random salt and 4096 iterations. */
int scram_secret_from_password(const char *password, struct scram_secret *out)
    __attribute__((warn_unused_result));
/* True if the string looks like a SCRAM verifier (starts with "SCRAM-SHA-256$"). */
bool scram_is_verifier(const char *s);

/* One server-side exchange. Owns its strings; free with scram_server_free. */
struct scram_server;
struct scram_server *scram_server_new(const struct scram_secret *secret);
void scram_server_free(struct scram_server *s);
/* client-first-message in (the SASLInitialResponse data); server-first-message out
 * (NUL-terminated, owned by s, valid until the next call or free). */
int scram_server_first(struct scram_server *s, const char *msg, size_t len, const char **reply)
    __attribute__((warn_unused_result));
/* client-final-message in; server-final-message ("v=...") out. SCRAM_EAUTH on a wrong proof. */
int scram_server_final(struct scram_server *s, const char *msg, size_t len, const char **reply)
    __attribute__((warn_unused_result));

/* One client-side exchange (tests; logins to backends). Owns its strings. */
struct scram_client;
struct scram_client *scram_client_new(const char *password);
void scram_client_free(struct scram_client *c);
int scram_client_first(struct scram_client *c, const char **msg)
    __attribute__((warn_unused_result));
int scram_client_final(struct scram_client *c, const char *server_first, size_t len,
                       const char **msg) __attribute__((warn_unused_result));
/* Checks the server's signature in server-final-message. */
int scram_client_verify(struct scram_client *c, const char *server_final, size_t len)
    __attribute__((warn_unused_result));

/* ---- additions (pgdual h1): bounds, deterministic derivation, test seams ---------------- */

#define SCRAM_MSG_MAX      2048     /* longest SCRAM message accepted from the peer */
#define SCRAM_ITER_MAX     10000000 /* largest iteration count accepted (bounds a client's work) */
#define SCRAM_PASSWORD_MAX 1024     /* longest plain password accepted, in bytes */
#define SCRAM_VERIFIER_MAX 512      /* longest verifier string accepted or produced */
#define SCRAM_NONCE_MAX    64       /* longest nonce we generate or accept through a test seam */

/* Derive a secret from a plain password with the given salt and iteration count (deterministic;
 * scram_secret_from_password is this with a random 16-byte salt and 4096 iterations). */
int scram_secret_derive(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_secret *out) __attribute__((warn_unused_result));
/* Format a secret as PostgreSQL stores it ("SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>").
 * buf must hold SCRAM_VERIFIER_MAX bytes to be always enough. */
int scram_secret_format(const struct scram_secret *secret, char *buf, size_t len)
    __attribute__((warn_unused_result));
/* Tests only: use nonce (printable, no ',') as the server's part of the nonce instead of random
 * bytes. Call before scram_server_first. */
int scram_server_set_nonce(struct scram_server *s, const char *nonce)
    __attribute__((warn_unused_result));
/* Client: the user name to send in n= (libpq sends it empty; the server uses the startup user).
 * Call before scram_client_first. */
int scram_client_set_user(struct scram_client *c, const char *user)
    __attribute__((warn_unused_result));
/* Tests only: use a fixed client nonce instead of random bytes. Call before scram_client_first. */
int scram_client_set_nonce(struct scram_client *c, const char *nonce)
    __attribute__((warn_unused_result));

/* ---- channel binding (tls-server-end-point, RFC 5929; SCRAM-SHA-256-PLUS) -------------------- */

#define SCRAM_CBIND_MAX 64 /* longest binding data: a SHA-512 certificate hash */
#define SCRAM_MECH      "SCRAM-SHA-256"
#define SCRAM_MECH_PLUS "SCRAM-SHA-256-PLUS"

/* Server: the connection is TLS and SCRAM-SHA-256-PLUS was offered (before SCRAM-SHA-256); data
 * is the connection's tls-server-end-point binding (the hash of our certificate, computed by the
 * caller), plus says the client chose SCRAM-SHA-256-PLUS. Then a client-first-message with gs2
 * flag 'y' is refused (downgrade), 'p' must name tls-server-end-point and the client-final c=
 * must carry exactly this data. Without this call only SCRAM-SHA-256 was offered: 'p' is
 * refused and 'y' accepted. Call before scram_server_first. */
int scram_server_set_channel_binding(struct scram_server *s, const uint8_t *data, size_t len,
                                     bool plus) __attribute__((warn_unused_result));
/* Client (tests): bind to data with "p=tls-server-end-point" (for SCRAM-SHA-256-PLUS). Call
 * before scram_client_first. */
int scram_client_set_channel_binding(struct scram_client *c, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));
