/* tests/unit/test_scram_plus.c: protocol/scram.c's channel binding (SCRAM-SHA-256-PLUS with
 * tls-server-end-point): round trips, wrong binding data, the 'y' downgrade, mechanism/flag
 * mismatches, and the exact c= attribute a binding client sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "protocol/scram.h"

static const uint8_t cert_a[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t cert_b[32] = {32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                   16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1};

/* Client binding to cdata (NULL: none) against a server offering sdata (NULL: no -PLUS) with the
 * client's choice plus. Returns the first failing step's code (first or final), 0 on success. */
static int exchange(const uint8_t *cdata, const uint8_t *sdata, bool plus, const char **final_msg)
{
    struct scram_secret sec;
    const char *m1, *m2, *m3, *m4 = NULL;
    assert_int_equal(scram_secret_from_password("pencil", &sec), 0);
    struct scram_server *s = scram_server_new(&sec);
    struct scram_client *c = scram_client_new("pencil");
    if (cdata) {
        assert_int_equal(scram_client_set_channel_binding(c, cdata, 32), 0);
    }
    if (sdata) {
        assert_int_equal(scram_server_set_channel_binding(s, sdata, 32, plus), 0);
    }
    assert_int_equal(scram_client_first(c, &m1), 0);
    int rc = scram_server_first(s, m1, strlen(m1), &m2);
    if (rc == 0) {
        assert_int_equal(scram_client_final(c, m2, strlen(m2), &m3), 0);
        if (final_msg) {
            static char keep[1024];
            snprintf(keep, sizeof keep, "%s", m3);
            *final_msg = keep;
        }
        rc = scram_server_final(s, m3, strlen(m3), &m4);
        if (rc == 0) {
            assert_int_equal(scram_client_verify(c, m4, strlen(m4)), 0);
        }
    }
    scram_client_free(c);
    scram_server_free(s);
    return rc;
}

static void test_plus_round_trip(void **state)
{
    (void)state;
    const char *fin = NULL;
    assert_int_equal(exchange(cert_a, cert_a, true, &fin), 0);
    /* c= is base64("p=tls-server-end-point,," || the 32 bytes). */
    uint8_t raw[24 + 32];
    char b64[128];
    memcpy(raw, "p=tls-server-end-point,,", 24);
    memcpy(raw + 24, cert_a, 32);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)b64, raw, sizeof raw), 76);
    char want[160];
    snprintf(want, sizeof want, "c=%s,r=", b64);
    assert_memory_equal(fin, want, strlen(want));
}

static void test_plus_wrong_certificate(void **state)
{
    (void)state;
    /* The client saw another certificate (a man in the middle terminating TLS). */
    assert_int_equal(exchange(cert_b, cert_a, true, NULL), SCRAM_ECBIND);
}

static void test_plain_over_tls(void **state)
{
    (void)state;
    /* A client without binding ('n') may pick SCRAM-SHA-256 though -PLUS was offered. */
    assert_int_equal(exchange(NULL, cert_a, false, NULL), 0);
    /* ... but not claim SCRAM-SHA-256-PLUS and then not bind. */
    assert_int_equal(exchange(NULL, cert_a, true, NULL), SCRAM_ECBIND);
    /* Binding with plain SCRAM-SHA-256 chosen is refused, whether -PLUS was offered or not. */
    assert_int_equal(exchange(cert_a, cert_a, false, NULL), SCRAM_ECBIND);
    assert_int_equal(exchange(cert_a, NULL, false, NULL), SCRAM_ECBIND);
}

static void test_y_downgrade(void **state)
{
    (void)state;
    struct scram_secret sec;
    const char *reply = NULL;
    assert_int_equal(scram_secret_from_password("pencil", &sec), 0);
    for (int offered = 0; offered < 2; offered++) {
        struct scram_server *s = scram_server_new(&sec);
        if (offered) {
            assert_int_equal(scram_server_set_channel_binding(s, cert_a, 32, false), 0);
        }
        static const char y_first[] = "y,,n=,r=abc";
        int rc = scram_server_first(s, y_first, strlen(y_first), &reply);
        /* 'y' = "I bind, but you cannot": a lie when we offered -PLUS. */
        assert_int_equal(rc, offered ? SCRAM_ECBIND : 0);
        scram_server_free(s);
    }
}

static void test_bad_binding_input(void **state)
{
    (void)state;
    struct scram_secret sec;
    const char *reply = NULL;
    uint8_t big[SCRAM_CBIND_MAX + 1] = {0};
    assert_int_equal(scram_secret_from_password("pencil", &sec), 0);
    struct scram_server *s = scram_server_new(&sec);
    assert_int_equal(scram_server_set_channel_binding(s, big, sizeof big, true), SCRAM_EPROTO);
    assert_int_equal(scram_server_set_channel_binding(s, big, 0, true), SCRAM_EPROTO);
    assert_int_equal(scram_server_set_channel_binding(s, cert_a, 32, true), 0);
    static const char *const bad[] = {
        "p=tls-unique,,n=,r=abc", /* another binding type */
        "p=tls-server-end-point,a=x,n=,r=abc" /* authzid */,
        "p=tls-server-end-point",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scram_server *t = scram_server_new(&sec);
        assert_int_equal(scram_server_set_channel_binding(t, cert_a, 32, true), 0);
        assert_int_equal(scram_server_first(t, bad[i], strlen(bad[i]), &reply), SCRAM_EPROTO);
        scram_server_free(t);
    }
    static const char ok[] = "p=tls-server-end-point,,n=,r=abc";
    assert_int_equal(scram_server_first(s, ok, strlen(ok), &reply), 0);
    /* Too late once the exchange started. */
    assert_int_equal(scram_server_set_channel_binding(s, cert_a, 32, true), SCRAM_EPROTO);
    /* c= without the binding data (just the header) fails the binding check. */
    char fin[256];
    size_t nl = strcspn(reply, ",");
    snprintf(fin, sizeof fin, "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,%.*s,p=%s", (int)nl, reply,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_int_equal(scram_server_final(s, fin, strlen(fin), &reply), SCRAM_ECBIND);
    scram_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plus_round_trip),   cmocka_unit_test(test_plus_wrong_certificate),
        cmocka_unit_test(test_plain_over_tls),    cmocka_unit_test(test_y_downgrade),
        cmocka_unit_test(test_bad_binding_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
