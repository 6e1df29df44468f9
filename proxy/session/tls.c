/* proxy/session/tls.c: the server-side SSL_CTX for client TLS and channel-binding data. */
#include "proxy/session/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/config.h"

static const struct {
    const char *name;
    unsigned bits;
} tls_protocol_words[] = {
    {"tlsv1.0", 1u << 0}, {"tlsv1", 1u << 0},   {"tlsv1.1", 1u << 1}, {"tlsv1.2", 1u << 2},
    {"tlsv1.3", 1u << 3}, {"secure", 3u << 2},  {"all", 15u},         {"legacy", 15u},
    {"normal", 3u << 2},  {"default", 3u << 2},
};

int tls_protocols_parse(const char *spec, unsigned *set)
{
    unsigned bits = 0;
    const char *p = spec ? spec : "";
    while (*p) {
        size_t skip = strspn(p, ", :\t");
        p += skip;
        size_t n = strcspn(p, ", :\t");
        if (n == 0) {
            break;
        }
        bool known = false;
        for (size_t i = 0; i < sizeof(tls_protocol_words) / sizeof(tls_protocol_words[0]); i++) {
            if (strlen(tls_protocol_words[i].name) == n &&
                strncasecmp(p, tls_protocol_words[i].name, n) == 0) {
                bits |= tls_protocol_words[i].bits;
                known = true;
            }
        }
        if (!known) {
            return -EINVAL;
        }
        p += n;
    }
    if (bits == 0) {
        return -EINVAL;
    }
    *set = bits;
    return 0;
}

/* The first OpenSSL error in the queue as text (the queue is cleared). */
static void ssl_err_text(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, n, "unknown error");
    } else {
        ERR_error_string_n(e, buf, n);
    }
    ERR_clear_error();
}

/* Protocol versions: min and max from the set, SSL_OP_NO_* for holes inside it. */
static int tls_ctx_protocols(SSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
    static const int versions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
    static const unsigned long no_ops[] = {SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2,
                                           SSL_OP_NO_TLSv1_3};
    unsigned set = 0;
    if (tls_protocols_parse(spec, &set) < 0) {
        snprintf(err, errlen,
                 "client_tls_protocols: \"%s\" is not secure | all | legacy | a list of tlsv1.0, "
                 "tlsv1.1, tlsv1.2, tlsv1.3",
                 spec);
        return -EINVAL;
    }
    int lo = 0, hi = 3;
    while (!(set & (1u << lo))) {
        lo++;
    }
    while (!(set & (1u << hi))) {
        hi--;
    }
    for (int v = lo; v <= hi; v++) {
        if (!(set & (1u << v))) {
            SSL_CTX_set_options(ctx, no_ops[v]);
        }
    }
    if (!SSL_CTX_set_min_proto_version(ctx, versions[lo]) ||
        !SSL_CTX_set_max_proto_version(ctx, versions[hi])) {
        snprintf(err, errlen, "client_tls_protocols: OpenSSL refuses \"%s\"", spec);
        return -EINVAL;
    }
    return 0;
}

/* Certificate, key, ciphers and client-certificate verification. */
static int tls_ctx_files(SSL_CTX *ctx, const struct config *cfg, char *err, size_t errlen)
{
    char msg[256];
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->client_tls_cert_file) != 1) {
        ssl_err_text(msg, sizeof(msg));
        snprintf(err, errlen, "client_tls_cert_file %s: %s", cfg->client_tls_cert_file, msg);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->client_tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err_text(msg, sizeof(msg));
        snprintf(err, errlen, "client_tls_key_file %s: %s", cfg->client_tls_key_file, msg);
        return -EINVAL;
    }
    const char *ciphers = cfg->client_tls_ciphers;
    if (ciphers[0] && strcasecmp(ciphers, "default") != 0 &&
        SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "client_tls_ciphers: OpenSSL knows no cipher in \"%s\"", ciphers);
        return -EINVAL;
    }
    if (cfg->client_tls_sslmode >= TLS_VERIFY_CA) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_tls_ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, cfg->client_tls_ca_file, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            ssl_err_text(msg, sizeof(msg));
            snprintf(err, errlen, "client_tls_ca_file %s: %s", cfg->client_tls_ca_file, msg);
            return -EINVAL;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return 0;
}

int tls_ctx_load(const struct config *cfg, SSL_CTX **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->client_tls_sslmode == TLS_DISABLE) {
        return 0;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create an SSL_CTX");
        return -ENOMEM;
    }
    /* As PostgreSQL: no session resumption (each login is a full handshake), no renegotiation. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    int rc = tls_ctx_protocols(ctx, cfg->client_tls_protocols, err, errlen);
    if (rc == 0) {
        rc = tls_ctx_files(ctx, cfg, err, errlen);
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int tls_cbind_data(SSL *ssl, uint8_t out[TLS_CBIND_MAX])
{
    X509 *cert = SSL_get_certificate(ssl); /* borrowed */
    int md_nid = NID_undef;
    if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, NULL)) {
        return -1;
    }
    if (md_nid == NID_md5 || md_nid == NID_sha1) {
        md_nid = NID_sha256; /* RFC 5929 section 4.1 */
    }
    const EVP_MD *md = md_nid == NID_undef ? NULL : EVP_get_digestbynid(md_nid);
    unsigned int len = 0;
    if (!md || EVP_MD_get_size(md) > TLS_CBIND_MAX || !X509_digest(cert, md, out, &len)) {
        ERR_clear_error();
        return -1;
    }
    return (int)len;
}

void tls_peer_subject(SSL *ssl, char *buf, size_t n)
{
    buf[0] = '\0';
    X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), buf, (int)n);
    }
}
