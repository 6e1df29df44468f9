/* tests/unit/test_tls.c: proxy/session/tls.c: client_tls_protocols parsing, context loading
 * errors, and the tls-server-end-point hash for certificates signed with SHA-384 and SHA-1. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/config.h"
#include "proxy/session/tls.h"

static void test_protocols(void **state)
{
    (void)state;
    unsigned set = 0;
    assert_int_equal(tls_protocols_parse("secure", &set), 0);
    assert_int_equal(set, 0xcu); /* TLS 1.2 and 1.3 */
    assert_int_equal(tls_protocols_parse("all", &set), 0);
    assert_int_equal(set, 0xfu);
    assert_int_equal(tls_protocols_parse("legacy", &set), 0);
    assert_int_equal(set, 0xfu);
    assert_int_equal(tls_protocols_parse("TLSv1.3", &set), 0);
    assert_int_equal(set, 0x8u);
    assert_int_equal(tls_protocols_parse("tlsv1.0, tlsv1.2:tlsv1.3", &set), 0);
    assert_int_equal(set, 0xdu);
    assert_int_equal(tls_protocols_parse("", &set), -EINVAL);
    assert_int_equal(tls_protocols_parse(" , ", &set), -EINVAL);
    assert_int_equal(tls_protocols_parse("tlsv1.4", &set), -EINVAL);
    assert_int_equal(tls_protocols_parse("secure,sslv3", &set), -EINVAL);
}

static void test_ctx_load_errors(void **state)
{
    (void)state;
    struct config c;
    char err[512];
    SSL_CTX *ctx = (SSL_CTX *)1;
    config_init_defaults(&c);
    assert_int_equal(tls_ctx_load(&c, &ctx, err, sizeof err), 0); /* disable: no context */
    assert_null(ctx);
    char e2[256];
    assert_int_equal(
        config_set(&c, config_find_key("pgdual", "client_tls_sslmode"), "require", e2, sizeof e2),
        0);
    assert_int_equal(config_set(&c, config_find_key("pgdual", "client_tls_cert_file"),
                                "/nonexistent.crt", e2, sizeof e2),
                     0);
    assert_int_equal(config_set(&c, config_find_key("pgdual", "client_tls_key_file"),
                                "/nonexistent.key", e2, sizeof e2),
                     0);
    assert_true(tls_ctx_load(&c, &ctx, err, sizeof err) < 0);
    assert_null(ctx);
    assert_non_null(strstr(err, "client_tls_cert_file /nonexistent.crt"));
    assert_int_equal(
        config_set(&c, config_find_key("pgdual", "client_tls_protocols"), "tlsv9", e2, sizeof e2),
        0);
    assert_true(tls_ctx_load(&c, &ctx, err, sizeof err) < 0);
    assert_non_null(strstr(err, "client_tls_protocols"));
    config_free(&c);
}

/* A self-signed P-256 certificate signed with md, loaded into an SSL as the server's. */
static SSL *ssl_with_cert(const EVP_MD *md, SSL_CTX **ctx_out, X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, md) > 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    EVP_PKEY_free(key);
    *ctx_out = ctx;
    *cert_out = x;
    return ssl;
}

static void check_cbind(const EVP_MD *sign_md, const EVP_MD *want_md)
{
    SSL_CTX *ctx;
    X509 *x;
    SSL *ssl = ssl_with_cert(sign_md, &ctx, &x);
    uint8_t got[TLS_CBIND_MAX], want[EVP_MAX_MD_SIZE];
    unsigned int wlen = 0;
    assert_int_equal(X509_digest(x, want_md, want, &wlen), 1);
    assert_int_equal(tls_cbind_data(ssl, got), (int)wlen);
    assert_memory_equal(got, want, wlen);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    X509_free(x);
}

static void test_cbind_hash(void **state)
{
    (void)state;
    check_cbind(EVP_sha384(), EVP_sha384()); /* the certificate's own signature hash */
    check_cbind(EVP_sha256(), EVP_sha256());
    check_cbind(EVP_sha1(), EVP_sha256()); /* RFC 5929: MD5 and SHA-1 become SHA-256 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_ctx_load_errors),
        cmocka_unit_test(test_cbind_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
