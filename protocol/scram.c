/* protocol/scram.c: SCRAM-SHA-256 as PostgreSQL 15 speaks it: verifiers, server and client sides.
 */
#include "protocol/scram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SCRAM_PREFIX     "SCRAM-SHA-256$"
#define SCRAM_RAW_NONCE  18 /* random bytes in a nonce, as PostgreSQL (24 base64 chars) */
#define SCRAM_DEF_SALT   16 /* PostgreSQL's SCRAM_DEFAULT_SALT_LEN */
#define SCRAM_DEF_ITER   4096
#define SCRAM_B64_LEN(n) (4 * (((n) + 2) / 3))
#define SCRAM_BUF        (2 * SCRAM_MSG_MAX) /* one message we build (ours may echo theirs) */
#define SCRAM_AUTH_BUF   (3 * SCRAM_BUF)     /* AuthMessage: three messages and two commas */
#define SCRAM_USER_MAX   128 /* client: longest user name we put in n= (PostgreSQL: 63) */
#define SCRAM_GS2_TSE    "p=tls-server-end-point,,"
#define SCRAM_GS2_MAX    sizeof(SCRAM_GS2_TSE) /* longest gs2 header we accept, and its NUL */

/* ---- base64 (RFC 4648, with padding; strict on input) ------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes n bytes into out, which must hold SCRAM_B64_LEN(n) + 1 bytes; NUL-terminates. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    return c == '/' ? 63 : -1;
}

/* Decodes exactly n chars (no whitespace, padding required, canonical) into at most cap bytes. */
static int b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    if (n == 0 || n % 4 != 0) {
        return SCRAM_EPROTO;
    }
    size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
    size_t olen = n / 4 * 3 - pad;
    if (olen > cap) {
        return SCRAM_EPROTO;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = i + j >= n - pad ? 0 : b64_value(in[i + j]);
            if (d < 0) {
                return SCRAM_EPROTO;
            }
            v = v << 6 | (uint32_t)d;
        }
        if (i + 4 == n && (v & (pad == 2 ? 0xffffu : pad == 1 ? 0xffu : 0u)) != 0) {
            return SCRAM_EPROTO; /* non-canonical: the bits under the padding must be zero */
        }
        for (int k = 2; k >= 0 && o < olen; k--) {
            out[o++] = (uint8_t)(v >> (8 * k));
        }
    }
    *outlen = olen;
    return 0;
}

/* ---- attribute parsing ------------------------------------------------------------------ */

/* A SCRAM nonce: printable ASCII except ',' (RFC 5802 "printable"). */
static bool scram_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',') {
            return false;
        }
    }
    return n > 0;
}

/* Reads one "<letter>=<value>" at *pp and steps past its ',' separator. A ',' that ends the
 * string is refused, so "a=1," is malformed. The value borrows the input. */
static int next_attr(const char **pp, char *name, const char **val, size_t *vlen)
{
    const char *p = *pp;
    bool alpha = (p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z');
    if (!alpha || p[1] != '=') {
        return SCRAM_EPROTO;
    }
    *name = p[0];
    *val = p + 2;
    *vlen = strcspn(p + 2, ",");
    p += 2 + *vlen;
    if (*p == ',') {
        p++;
        if (*p == '\0') {
            return SCRAM_EPROTO;
        }
    }
    *pp = p;
    return 0;
}

/* next_attr that also insists on the attribute's name. */
static int want_attr(const char **pp, char want, const char **val, size_t *vlen)
{
    char name = 0;
    int rc = next_attr(pp, &name, val, vlen);
    if (rc < 0 || name != want) {
        return SCRAM_EPROTO;
    }
    return 0;
}

/* A positive decimal iteration count in [1, SCRAM_ITER_MAX]; no sign, no spaces. */
static int parse_iter(const char *s, size_t n, int *out)
{
    long v = 0;
    if (n == 0 || n > 9) {
        return SCRAM_EPROTO;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return SCRAM_EPROTO;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > SCRAM_ITER_MAX) {
        return SCRAM_EPROTO;
    }
    *out = (int)v;
    return 0;
}

/* Copies a message of len bytes into buf (cap bytes) as a C string; refuses NULs and overlong. */
static int copy_msg(const char *msg, size_t len, char *buf, size_t cap)
{
    if (msg == NULL || len == 0 || len > SCRAM_MSG_MAX || len >= cap || memchr(msg, 0, len)) {
        return SCRAM_EPROTO;
    }
    memcpy(buf, msg, len);
    buf[len] = '\0';
    return 0;
}

/* ---- key derivation --------------------------------------------------------------------- */

static int hmac256(const uint8_t *key, size_t klen, const void *data, size_t n, uint8_t *out)
{
    unsigned int olen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, data, n, out, &olen) || olen != SCRAM_KEY_LEN) {
        return SCRAM_ECRYPTO;
    }
    return 0;
}

/* SaltedPassword = Hi(password, salt, i), then ClientKey, StoredKey and ServerKey. */
static int derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iter,
                       uint8_t client_key[SCRAM_KEY_LEN], struct scram_secret *out)
{
    uint8_t salted[SCRAM_KEY_LEN];
    size_t plen = strnlen(password, SCRAM_PASSWORD_MAX + 1);
    if (plen > SCRAM_PASSWORD_MAX || salt_len == 0 || salt_len > SCRAM_SALT_MAX || iter < 1 ||
        iter > SCRAM_ITER_MAX) {
        return SCRAM_EPROTO;
    }
    int rc = SCRAM_ECRYPTO;
    if (!PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len, iter, EVP_sha256(),
                           SCRAM_KEY_LEN, salted)) {
        goto out;
    }
    rc = hmac256(salted, sizeof salted, "Client Key", 10, client_key);
    if (rc == 0) {
        rc = hmac256(salted, sizeof salted, "Server Key", 10, out->server_key);
    }
    if (rc == 0 && !SHA256(client_key, SCRAM_KEY_LEN, out->stored_key)) {
        rc = SCRAM_ECRYPTO;
    }
    if (rc == 0) {
        out->iterations = iter;
        memcpy(out->salt, salt, salt_len);
        out->salt_len = salt_len;
    }
out:
    OPENSSL_cleanse(salted, sizeof salted);
    return rc;
}

/* Passwords are used as their raw bytes (UTF-8 in practice). PostgreSQL additionally applies
 * SASLprep (RFC 4013) to passwords that are valid UTF-8; we do not, so a password that SASLprep
 * would change (non-ASCII spaces, some compatibility characters) derives a different secret.
 * For ASCII passwords the two agree. */
int scram_secret_derive(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_secret *out)
{
    uint8_t client_key[SCRAM_KEY_LEN];
    if (password == NULL || salt == NULL || out == NULL) {
        return SCRAM_EPROTO;
    }
    memset(out, 0, sizeof *out);
    int rc = derive_keys(password, salt, salt_len, iterations, client_key, out);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return rc;
}

int scram_secret_from_password(const char *password, struct scram_secret *out)
{
    uint8_t salt[SCRAM_DEF_SALT];
    if (RAND_bytes(salt, sizeof salt) != 1) {
        return SCRAM_ECRYPTO;
    }
    return scram_secret_derive(password, salt, sizeof salt, SCRAM_DEF_ITER, out);
}

bool scram_is_verifier(const char *s)
{
    return s != NULL && strncmp(s, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0;
}

/* Decodes a base64 field that must yield exactly SCRAM_KEY_LEN bytes. */
static int decode_key(const char *s, size_t n, uint8_t key[SCRAM_KEY_LEN])
{
    size_t got = 0;
    if (b64_decode(s, n, key, SCRAM_KEY_LEN, &got) < 0 || got != SCRAM_KEY_LEN) {
        return SCRAM_EPROTO;
    }
    return 0;
}

int scram_secret_parse(const char *verifier, struct scram_secret *out)
{
    struct scram_secret sec;
    if (verifier == NULL || out == NULL || !scram_is_verifier(verifier) ||
        strnlen(verifier, SCRAM_VERIFIER_MAX) >= SCRAM_VERIFIER_MAX) {
        return SCRAM_EPROTO;
    }
    memset(&sec, 0, sizeof sec);
    const char *iter = verifier + strlen(SCRAM_PREFIX);
    const char *salt = strchr(iter, ':');
    const char *stored = salt ? strchr(salt + 1, '$') : NULL;
    const char *server = stored ? strchr(stored + 1, ':') : NULL;
    if (server == NULL || parse_iter(iter, (size_t)(salt - iter), &sec.iterations) < 0 ||
        b64_decode(salt + 1, (size_t)(stored - salt - 1), sec.salt, sizeof sec.salt,
                   &sec.salt_len) < 0 ||
        decode_key(stored + 1, (size_t)(server - stored - 1), sec.stored_key) < 0 ||
        decode_key(server + 1, strlen(server + 1), sec.server_key) < 0) {
        return SCRAM_EPROTO;
    }
    *out = sec;
    return 0;
}

int scram_secret_format(const struct scram_secret *secret, char *buf, size_t len)
{
    char salt[SCRAM_B64_LEN(SCRAM_SALT_MAX) + 1];
    char stored[SCRAM_B64_LEN(SCRAM_KEY_LEN) + 1];
    char server[SCRAM_B64_LEN(SCRAM_KEY_LEN) + 1];
    if (secret == NULL || buf == NULL || secret->salt_len == 0 ||
        secret->salt_len > SCRAM_SALT_MAX || secret->iterations < 1) {
        return SCRAM_EPROTO;
    }
    b64_encode(secret->salt, secret->salt_len, salt);
    b64_encode(secret->stored_key, SCRAM_KEY_LEN, stored);
    b64_encode(secret->server_key, SCRAM_KEY_LEN, server);
    int n =
        snprintf(buf, len, SCRAM_PREFIX "%d:%s$%s:%s", secret->iterations, salt, stored, server);
    return n < 0 || (size_t)n >= len ? SCRAM_EPROTO : 0;
}

/* A fresh nonce: SCRAM_RAW_NONCE random bytes in base64 (never contains ','). */
static int make_nonce(char out[SCRAM_NONCE_MAX + 1])
{
    uint8_t raw[SCRAM_RAW_NONCE];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        return SCRAM_ECRYPTO;
    }
    b64_encode(raw, sizeof raw, out);
    return 0;
}

/* Sets a test nonce after checking it. */
static int set_nonce(char out[SCRAM_NONCE_MAX + 1], const char *nonce)
{
    size_t n = nonce ? strnlen(nonce, SCRAM_NONCE_MAX + 1) : 0;
    if (n > SCRAM_NONCE_MAX || !scram_printable(nonce, n)) {
        return SCRAM_EPROTO;
    }
    memcpy(out, nonce, n + 1);
    return 0;
}

/* AuthMessage = client-first-message-bare "," server-first-message "," client-final-without-proof
 */
static int auth_message(char *buf, size_t cap, const char *bare, const char *sfirst,
                        const char *final, size_t final_len)
{
    int n = snprintf(buf, cap, "%s,%s,%.*s", bare, sfirst, (int)final_len, final);
    return n < 0 || (size_t)n >= cap ? SCRAM_EPROTO : n;
}

/* ---- server side ------------------------------------------------------------------------ */

enum scram_server_state { SRV_WANT_FIRST, SRV_WANT_FINAL, SRV_DONE, SRV_FAILED };

struct scram_server {
    struct scram_secret secret;
    enum scram_server_state state;
    char cbind_flag;                  /* gs2 flag the client sent: 'n', 'y' or 'p' */
    bool cb_offered;                  /* TLS: SCRAM-SHA-256-PLUS was offered */
    bool cb_plus;                     /* ...and the client chose it */
    uint8_t cb_data[SCRAM_CBIND_MAX]; /* tls-server-end-point data of the connection */
    size_t cb_len;
    char gs2[SCRAM_GS2_MAX]; /* the gs2 header the client sent, which c= must carry back */
    size_t gs2_len;
    char snonce[SCRAM_NONCE_MAX + 1]; /* our part of the nonce; "" until drawn or set */
    char nonce[SCRAM_BUF];            /* client nonce + snonce: what client-final echoes */
    char bare[SCRAM_MSG_MAX + 1];     /* client-first-message-bare, for the AuthMessage */
    char first[SCRAM_BUF];            /* server-first-message we sent */
    char in[SCRAM_MSG_MAX + 1];       /* the current input as a C string */
    char out[SCRAM_BUF];              /* the latest reply (server-final-message) */
    char auth[SCRAM_AUTH_BUF];        /* AuthMessage scratch */
};

struct scram_server *scram_server_new(const struct scram_secret *secret)
{
    if (secret == NULL) {
        return NULL;
    }
    struct scram_server *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->secret = *secret;
        s->state = SRV_WANT_FIRST;
    }
    return s;
}

void scram_server_free(struct scram_server *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, sizeof *s);
        free(s);
    }
}

int scram_server_set_nonce(struct scram_server *s, const char *nonce)
{
    if (s == NULL || s->state != SRV_WANT_FIRST) {
        return SCRAM_EPROTO;
    }
    return set_nonce(s->snonce, nonce);
}

int scram_server_set_channel_binding(struct scram_server *s, const uint8_t *data, size_t len,
                                     bool plus)
{
    if (s == NULL || s->state != SRV_WANT_FIRST || data == NULL || len == 0 ||
        len > SCRAM_CBIND_MAX) {
        return SCRAM_EPROTO;
    }
    memcpy(s->cb_data, data, len);
    s->cb_len = len;
    s->cb_offered = true;
    s->cb_plus = plus;
    return 0;
}

/* gs2-header: "n,,", "y,," or "p=tls-server-end-point,," (no authzid). 'n': the client does not
 * bind. 'y': it could, but thinks the server cannot: true when we offered no -PLUS (PostgreSQL
 * accepts it then), a downgrade by someone in the middle when we did. 'p' only with -PLUS. */
static int parse_gs2(struct scram_server *s, const char **pp)
{
    const char *p = *pp;
    size_t n = 3;
    if (p[0] == 'p') {
        n = strlen(SCRAM_GS2_TSE);
        if (strncmp(p, SCRAM_GS2_TSE, n) != 0) {
            return SCRAM_EPROTO; /* another binding type, or an authzid */
        }
        if (!s->cb_plus) {
            return SCRAM_ECBIND; /* binding asked with plain SCRAM-SHA-256 */
        }
    } else if ((p[0] == 'n' || p[0] == 'y') && p[1] == ',' && p[2] == ',') {
        if (s->cb_plus || (p[0] == 'y' && s->cb_offered)) {
            return SCRAM_ECBIND;
        }
    } else {
        return SCRAM_EPROTO;
    }
    s->cbind_flag = p[0];
    memcpy(s->gs2, p, n);
    s->gs2_len = n;
    *pp = p + n;
    return 0;
}

/* client-first-message: gs2-header "n=" user ",r=" nonce [ "," extensions ] */
static int server_parse_first(struct scram_server *s)
{
    const char *p = s->in, *user, *cnonce, *v;
    size_t ulen, clen, vlen;
    char name;
    int rc = parse_gs2(s, &p);
    if (rc < 0) {
        return rc;
    }
    if (*p == 'm') { /* a mandatory extension we do not know */
        return SCRAM_EPROTO;
    }
    memcpy(s->bare, p, strlen(p) + 1);
    /* The user name is ignored, as in PostgreSQL: the startup packet's user is authoritative. */
    if (want_attr(&p, 'n', &user, &ulen) < 0 || want_attr(&p, 'r', &cnonce, &clen) < 0 ||
        !scram_printable(cnonce, clen)) {
        return SCRAM_EPROTO;
    }
    while (*p != '\0') { /* optional extensions: ignored */
        if (next_attr(&p, &name, &v, &vlen) < 0) {
            return SCRAM_EPROTO;
        }
    }
    if (s->snonce[0] == '\0' && make_nonce(s->snonce) < 0) {
        return SCRAM_ECRYPTO;
    }
    int n = snprintf(s->nonce, sizeof s->nonce, "%.*s%s", (int)clen, cnonce, s->snonce);
    return n < 0 || (size_t)n >= sizeof s->nonce ? SCRAM_EPROTO : 0;
}

int scram_server_first(struct scram_server *s, const char *msg, size_t len, const char **reply)
{
    char salt[SCRAM_B64_LEN(SCRAM_SALT_MAX) + 1];
    if (s == NULL || reply == NULL || s->state != SRV_WANT_FIRST) {
        return SCRAM_EPROTO;
    }
    s->state = SRV_FAILED; /* until proven otherwise */
    int rc = copy_msg(msg, len, s->in, sizeof s->in);
    if (rc == 0) {
        rc = server_parse_first(s);
    }
    if (rc < 0) {
        return rc;
    }
    b64_encode(s->secret.salt, s->secret.salt_len, salt);
    int n =
        snprintf(s->first, sizeof s->first, "r=%s,s=%s,i=%d", s->nonce, salt, s->secret.iterations);
    if (n < 0 || (size_t)n >= sizeof s->first) {
        return SCRAM_EPROTO;
    }
    s->state = SRV_WANT_FINAL;
    *reply = s->first;
    return 0;
}

/* client-final-message: "c=" cbind ",r=" nonce [ "," extensions ] ",p=" proof. Sets *wp_len to
 * the length of client-final-message-without-proof. */
static int server_parse_final(struct scram_server *s, uint8_t proof[SCRAM_KEY_LEN], size_t *wp_len)
{
    const char *p = s->in, *v, *attr;
    size_t vlen;
    char name = 0;
    /* c= is the base64 of the gs2 header the client sent, then (with 'p') the binding data. */
    uint8_t raw[SCRAM_GS2_MAX + SCRAM_CBIND_MAX];
    char cbind[SCRAM_B64_LEN(sizeof raw) + 1];
    size_t rlen = s->gs2_len;
    memcpy(raw, s->gs2, rlen);
    if (s->cbind_flag == 'p') {
        memcpy(raw + rlen, s->cb_data, s->cb_len);
        rlen += s->cb_len;
    }
    b64_encode(raw, rlen, cbind);
    if (want_attr(&p, 'c', &v, &vlen) < 0) {
        return SCRAM_EPROTO;
    }
    if (vlen != strlen(cbind) || CRYPTO_memcmp(v, cbind, vlen) != 0) {
        return s->cbind_flag == 'p' ? SCRAM_ECBIND : SCRAM_EPROTO;
    }
    if (want_attr(&p, 'r', &v, &vlen) < 0 || vlen != strlen(s->nonce) ||
        memcmp(v, s->nonce, vlen) != 0) {
        return SCRAM_EPROTO;
    }
    do {
        attr = p;
        if (*p == '\0' || next_attr(&p, &name, &v, &vlen) < 0) {
            return SCRAM_EPROTO; /* no proof, or garbage */
        }
    } while (name != 'p');
    if (*p != '\0' || decode_key(v, vlen, proof) < 0) {
        return SCRAM_EPROTO; /* proof must be last and exactly one SHA-256 long */
    }
    *wp_len = (size_t)(attr - 1 - s->in);
    return 0;
}

/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); it must hash to StoredKey. */
static int server_check_proof(struct scram_server *s, const uint8_t proof[SCRAM_KEY_LEN],
                              size_t wp_len)
{
    uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], hash[SCRAM_KEY_LEN];
    char ssig[SCRAM_B64_LEN(SCRAM_KEY_LEN) + 1];
    int n = auth_message(s->auth, sizeof s->auth, s->bare, s->first, s->in, wp_len);
    if (n < 0) {
        return n;
    }
    int rc = hmac256(s->secret.stored_key, SCRAM_KEY_LEN, s->auth, (size_t)n, sig);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < SCRAM_KEY_LEN; i++) {
        key[i] = proof[i] ^ sig[i];
    }
    if (!SHA256(key, sizeof key, hash)) {
        return SCRAM_ECRYPTO;
    }
    OPENSSL_cleanse(key, sizeof key);
    if (CRYPTO_memcmp(hash, s->secret.stored_key, SCRAM_KEY_LEN) != 0) {
        return SCRAM_EAUTH;
    }
    rc = hmac256(s->secret.server_key, SCRAM_KEY_LEN, s->auth, (size_t)n, sig);
    if (rc < 0) {
        return rc;
    }
    b64_encode(sig, sizeof sig, ssig);
    snprintf(s->out, sizeof s->out, "v=%s", ssig);
    return 0;
}

int scram_server_final(struct scram_server *s, const char *msg, size_t len, const char **reply)
{
    uint8_t proof[SCRAM_KEY_LEN];
    size_t wp_len = 0;
    if (s == NULL || reply == NULL || s->state != SRV_WANT_FINAL) {
        return SCRAM_EPROTO;
    }
    s->state = SRV_FAILED;
    int rc = copy_msg(msg, len, s->in, sizeof s->in);
    if (rc == 0) {
        rc = server_parse_final(s, proof, &wp_len);
    }
    if (rc == 0) {
        rc = server_check_proof(s, proof, wp_len);
    }
    if (rc < 0) {
        return rc;
    }
    s->state = SRV_DONE;
    *reply = s->out;
    return 0;
}

/* ---- client side ------------------------------------------------------------------------ */

enum scram_client_state { CLI_NEW, CLI_SENT_FIRST, CLI_SENT_FINAL, CLI_DONE, CLI_FAILED };

struct scram_client {
    enum scram_client_state state;
    char password[SCRAM_PASSWORD_MAX + 1];
    char user[3 * SCRAM_USER_MAX + 1]; /* saslname: ',' and '=' escaped as =2C / =3D */
    char cnonce[SCRAM_NONCE_MAX + 1];  /* our nonce; "" until drawn or set */
    uint8_t cb_data[SCRAM_CBIND_MAX];  /* tls-server-end-point data; cb_len 0 = no binding */
    size_t cb_len;
    char bare[sizeof "n=,r=" + 3 * SCRAM_USER_MAX + SCRAM_NONCE_MAX]; /* client-first-bare */
    char first[SCRAM_MSG_MAX + 1];     /* server-first-message as received */
    uint8_t server_sig[SCRAM_KEY_LEN]; /* the v= we expect in server-final */
    char out[SCRAM_BUF];               /* the latest message we built */
    char auth[SCRAM_AUTH_BUF];         /* AuthMessage scratch */
};

struct scram_client *scram_client_new(const char *password)
{
    size_t n = password ? strnlen(password, SCRAM_PASSWORD_MAX + 1) : SCRAM_PASSWORD_MAX + 1;
    if (n > SCRAM_PASSWORD_MAX) {
        return NULL;
    }
    struct scram_client *c = calloc(1, sizeof *c);
    if (c != NULL) {
        memcpy(c->password, password, n + 1);
        c->state = CLI_NEW;
    }
    return c;
}

void scram_client_free(struct scram_client *c)
{
    if (c != NULL) {
        OPENSSL_cleanse(c, sizeof *c);
        free(c);
    }
}

int scram_client_set_user(struct scram_client *c, const char *user)
{
    size_t n = user ? strnlen(user, SCRAM_USER_MAX + 1) : 0, o = 0;
    if (c == NULL || c->state != CLI_NEW || user == NULL || n > SCRAM_USER_MAX) {
        return SCRAM_EPROTO;
    }
    for (size_t i = 0; i < n; i++) {
        const char *esc = user[i] == ',' ? "=2C" : user[i] == '=' ? "=3D" : NULL;
        if (esc != NULL) {
            memcpy(c->user + o, esc, 3);
            o += 3;
        } else {
            c->user[o++] = user[i];
        }
    }
    c->user[o] = '\0';
    return 0;
}

int scram_client_set_nonce(struct scram_client *c, const char *nonce)
{
    if (c == NULL || c->state != CLI_NEW) {
        return SCRAM_EPROTO;
    }
    return set_nonce(c->cnonce, nonce);
}

int scram_client_set_channel_binding(struct scram_client *c, const uint8_t *data, size_t len)
{
    if (c == NULL || c->state != CLI_NEW || data == NULL || len == 0 || len > SCRAM_CBIND_MAX) {
        return SCRAM_EPROTO;
    }
    memcpy(c->cb_data, data, len);
    c->cb_len = len;
    return 0;
}

int scram_client_first(struct scram_client *c, const char **msg)
{
    if (c == NULL || msg == NULL || c->state != CLI_NEW) {
        return SCRAM_EPROTO;
    }
    if (c->cnonce[0] == '\0' && make_nonce(c->cnonce) < 0) {
        return SCRAM_ECRYPTO;
    }
    snprintf(c->bare, sizeof c->bare, "n=%s,r=%s", c->user, c->cnonce);
    snprintf(c->out, sizeof c->out, "%s%s", c->cb_len ? SCRAM_GS2_TSE : "n,,", c->bare);
    c->state = CLI_SENT_FIRST;
    *msg = c->out;
    return 0;
}

/* server-first-message: "r=" nonce ",s=" salt ",i=" iterations, nothing after (as libpq). */
static int client_parse_first(struct scram_client *c, uint8_t *salt, size_t *salt_len, int *iter)
{
    const char *p = c->first, *nonce, *s64, *i10;
    size_t nlen, slen, ilen, clen = strlen(c->cnonce);
    if (want_attr(&p, 'r', &nonce, &nlen) < 0 || nlen <= clen ||
        memcmp(nonce, c->cnonce, clen) != 0 || !scram_printable(nonce, nlen)) {
        return SCRAM_EPROTO;
    }
    if (want_attr(&p, 's', &s64, &slen) < 0 ||
        b64_decode(s64, slen, salt, SCRAM_SALT_MAX, salt_len) < 0) {
        return SCRAM_EPROTO;
    }
    if (want_attr(&p, 'i', &i10, &ilen) < 0 || parse_iter(i10, ilen, iter) < 0 || *p != '\0') {
        return SCRAM_EPROTO;
    }
    /* The final message without proof; the nonce ends at the first ','. c= is the gs2 header
     * we sent, then the binding data. */
    uint8_t raw[SCRAM_GS2_MAX + SCRAM_CBIND_MAX];
    char cbind[SCRAM_B64_LEN(sizeof raw) + 1];
    const char *gs2 = c->cb_len ? SCRAM_GS2_TSE : "n,,";
    size_t rlen = strlen(gs2);
    memcpy(raw, gs2, rlen);
    memcpy(raw + rlen, c->cb_data, c->cb_len);
    b64_encode(raw, rlen + c->cb_len, cbind);
    int n = snprintf(c->out, sizeof c->out, "c=%s,r=%.*s", cbind, (int)nlen, nonce);
    return n < 0 || (size_t)n >= sizeof c->out ? SCRAM_EPROTO : 0;
}

/* Computes the proof for c->out (client-final-without-proof), appends ",p=", keeps ServerSig. */
static int client_prove(struct scram_client *c, const uint8_t *salt, size_t salt_len, int iter)
{
    struct scram_secret sec;
    uint8_t client_key[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
    char p64[SCRAM_B64_LEN(SCRAM_KEY_LEN) + 1];
    size_t wp_len = strlen(c->out);
    int n = auth_message(c->auth, sizeof c->auth, c->bare, c->first, c->out, wp_len);
    int rc = n < 0 ? n : derive_keys(c->password, salt, salt_len, iter, client_key, &sec);
    if (rc == 0) {
        rc = hmac256(sec.stored_key, SCRAM_KEY_LEN, c->auth, (size_t)n, sig);
    }
    if (rc == 0) {
        rc = hmac256(sec.server_key, SCRAM_KEY_LEN, c->auth, (size_t)n, c->server_sig);
    }
    if (rc == 0) {
        for (size_t i = 0; i < SCRAM_KEY_LEN; i++) {
            sig[i] ^= client_key[i];
        }
        b64_encode(sig, sizeof sig, p64);
        n = snprintf(c->out + wp_len, sizeof c->out - wp_len, ",p=%s", p64);
        rc = n < 0 || (size_t)n >= sizeof c->out - wp_len ? SCRAM_EPROTO : 0;
    }
    OPENSSL_cleanse(client_key, sizeof client_key);
    OPENSSL_cleanse(&sec, sizeof sec);
    return rc;
}

int scram_client_final(struct scram_client *c, const char *server_first, size_t len,
                       const char **msg)
{
    uint8_t salt[SCRAM_SALT_MAX];
    size_t salt_len = 0;
    int iter = 0;
    if (c == NULL || msg == NULL || c->state != CLI_SENT_FIRST) {
        return SCRAM_EPROTO;
    }
    c->state = CLI_FAILED;
    int rc = copy_msg(server_first, len, c->first, sizeof c->first);
    if (rc == 0) {
        rc = client_parse_first(c, salt, &salt_len, &iter);
    }
    if (rc == 0) {
        rc = client_prove(c, salt, salt_len, iter);
    }
    if (rc < 0) {
        return rc;
    }
    c->state = CLI_SENT_FINAL;
    *msg = c->out;
    return 0;
}

/* server-final-message: "v=" ServerSignature, or "e=" server-error (reported as SCRAM_EAUTH). */
int scram_client_verify(struct scram_client *c, const char *server_final, size_t len)
{
    char buf[SCRAM_MSG_MAX + 1];
    uint8_t sig[SCRAM_KEY_LEN];
    const char *p = buf, *v;
    size_t vlen;
    char name = 0;
    if (c == NULL || c->state != CLI_SENT_FINAL) {
        return SCRAM_EPROTO;
    }
    c->state = CLI_FAILED;
    if (copy_msg(server_final, len, buf, sizeof buf) < 0 || next_attr(&p, &name, &v, &vlen) < 0) {
        return SCRAM_EPROTO;
    }
    if (name == 'e') {
        return SCRAM_EAUTH;
    }
    if (name != 'v' || *p != '\0' || decode_key(v, vlen, sig) < 0) {
        return SCRAM_EPROTO;
    }
    if (CRYPTO_memcmp(sig, c->server_sig, SCRAM_KEY_LEN) != 0) {
        return SCRAM_EAUTH;
    }
    c->state = CLI_DONE;
    return 0;
}
