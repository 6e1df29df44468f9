/* tests/unit/test_scram.c: protocol/scram.c: RFC 7677 known answers, round trips, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "protocol/scram.h"

/* RFC 7677 section 3: user "user", password "pencil". */
#define RFC_SALT_B64     "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CNONCE       "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE       "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=4096"
#define RFC_CLIENT_FINAL \
    "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* StoredKey and ServerKey for that salt, computed independently (Python hashlib/hmac). */
#define RFC_VERIFIER                                                                   \
    "SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t rfc_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};

static int server_first(struct scram_server *s, const char *m, const char **reply)
{
    return scram_server_first(s, m, strlen(m), reply);
}

static int server_final(struct scram_server *s, const char *m, const char **reply)
{
    return scram_server_final(s, m, strlen(m), reply);
}

static void test_rfc7677_verifier(void **state)
{
    (void)state;
    struct scram_secret sec, parsed;
    char buf[SCRAM_VERIFIER_MAX];
    assert_int_equal(scram_secret_derive("pencil", rfc_salt, sizeof rfc_salt, 4096, &sec), 0);
    assert_int_equal(scram_secret_format(&sec, buf, sizeof buf), 0);
    assert_string_equal(buf, RFC_VERIFIER);
    assert_int_equal(scram_secret_parse(buf, &parsed), 0);
    assert_int_equal(parsed.iterations, 4096);
    assert_int_equal(parsed.salt_len, sizeof rfc_salt);
    assert_memory_equal(parsed.salt, rfc_salt, sizeof rfc_salt);
    assert_memory_equal(parsed.stored_key, sec.stored_key, SCRAM_KEY_LEN);
    assert_memory_equal(parsed.server_key, sec.server_key, SCRAM_KEY_LEN);
    assert_true(scram_is_verifier(buf));
    assert_false(scram_is_verifier("pencil"));
    assert_false(scram_is_verifier(NULL));
}

static void test_rfc7677_server(void **state)
{
    (void)state;
    struct scram_secret sec;
    const char *reply = NULL;
    assert_int_equal(scram_secret_derive("pencil", rfc_salt, sizeof rfc_salt, 4096, &sec), 0);
    struct scram_server *s = scram_server_new(&sec);
    assert_non_null(s);
    assert_int_equal(scram_server_set_nonce(s, RFC_SNONCE), 0);
    assert_int_equal(server_first(s, RFC_CLIENT_FIRST, &reply), 0);
    assert_string_equal(reply, RFC_SERVER_FIRST);
    assert_int_equal(server_final(s, RFC_CLIENT_FINAL, &reply), 0);
    assert_string_equal(reply, RFC_SERVER_FINAL);
    assert_int_equal(server_final(s, RFC_CLIENT_FINAL, &reply), SCRAM_EPROTO); /* done */
    scram_server_free(s);
}

static void test_rfc7677_client(void **state)
{
    (void)state;
    const char *msg = NULL;
    struct scram_client *c = scram_client_new("pencil");
    assert_non_null(c);
    assert_int_equal(scram_client_set_user(c, "user"), 0);
    assert_int_equal(scram_client_set_nonce(c, RFC_CNONCE), 0);
    assert_int_equal(scram_client_first(c, &msg), 0);
    assert_string_equal(msg, RFC_CLIENT_FIRST);
    assert_int_equal(scram_client_final(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &msg), 0);
    assert_string_equal(msg, RFC_CLIENT_FINAL);
    assert_int_equal(scram_client_verify(c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), 0);
    scram_client_free(c);
}

/* Full exchange between our client and our server; returns the server's final result. */
static int exchange(const struct scram_secret *sec, const char *password)
{
    const char *m1, *m2, *m3, *m4;
    struct scram_server *s = scram_server_new(sec);
    struct scram_client *c = scram_client_new(password);
    assert_non_null(s);
    assert_non_null(c);
    assert_int_equal(scram_client_first(c, &m1), 0);
    assert_memory_equal(m1, "n,,n=,r=", 8); /* libpq style: empty user name */
    assert_int_equal(server_first(s, m1, &m2), 0);
    assert_int_equal(scram_client_final(c, m2, strlen(m2), &m3), 0);
    int rc = server_final(s, m3, &m4);
    if (rc == 0) {
        assert_int_equal(scram_client_verify(c, m4, strlen(m4)), 0);
    }
    scram_client_free(c);
    scram_server_free(s);
    return rc;
}

static void test_round_trip_verifier(void **state)
{
    (void)state;
    struct scram_secret sec;
    assert_int_equal(scram_secret_parse(RFC_VERIFIER, &sec), 0);
    assert_int_equal(exchange(&sec, "pencil"), 0);
    assert_int_equal(exchange(&sec, "pencil "), SCRAM_EAUTH);
    assert_int_equal(exchange(&sec, ""), SCRAM_EAUTH);
}

static void test_round_trip_password(void **state)
{
    (void)state;
    struct scram_secret a, b;
    char buf[SCRAM_VERIFIER_MAX];
    assert_int_equal(scram_secret_from_password("s3cr\xc3\xa9t", &a), 0);
    assert_int_equal(scram_secret_from_password("s3cr\xc3\xa9t", &b), 0);
    assert_int_equal(a.iterations, 4096);
    assert_int_equal(a.salt_len, 16);
    assert_memory_not_equal(a.salt, b.salt, 16); /* fresh random salt each time */
    assert_int_equal(exchange(&a, "s3cr\xc3\xa9t"), 0);
    assert_int_equal(exchange(&a, "s3cret"), SCRAM_EAUTH);
    assert_int_equal(scram_secret_format(&a, buf, sizeof buf), 0);
    assert_int_equal(scram_secret_parse(buf, &b), 0);
    assert_int_equal(exchange(&b, "s3cr\xc3\xa9t"), 0);
}

static void test_wrong_password_fails_for_good(void **state)
{
    (void)state;
    struct scram_secret sec;
    const char *m1, *m2, *m3, *m4 = NULL;
    assert_int_equal(scram_secret_parse(RFC_VERIFIER, &sec), 0);
    struct scram_server *s = scram_server_new(&sec);
    struct scram_client *c = scram_client_new("pen");
    assert_int_equal(scram_client_first(c, &m1), 0);
    assert_int_equal(server_first(s, m1, &m2), 0);
    assert_int_equal(scram_client_final(c, m2, strlen(m2), &m3), 0);
    assert_int_equal(server_final(s, m3, &m4), SCRAM_EAUTH);
    assert_null(m4);
    assert_int_equal(server_final(s, m3, &m4), SCRAM_EPROTO); /* no second try */
    scram_client_free(c);
    scram_server_free(s);
}

/* Each of these client-first-messages must be refused before any reply is produced. */
static void test_bad_client_first(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "n",
        "n,",
        "n,,",
        "p=tls-unique,,n=,r=abc", /* unknown binding type (more: test_scram_plus.c) */
        "p,,n=,r=abc",
        "x,,n=,r=abc",
        "n,a=bob,n=,r=abc", /* authzid */
        "n,,m=ext,n=,r=abc",
        "n,,r=abc",       /* no n= */
        "n,,n=,x=abc",    /* no r= */
        "n,,n=",          /* no r= */
        "n,,n=,r=",       /* empty nonce */
        "n,,n=,r=a b",    /* non-printable nonce */
        "n,,n=,r=abc,",   /* trailing comma */
        "n,,n=,r=abc,=x", /* extension without a name */
        "n,,n=,r=abc,1=x",
        "n,,n=,r=abc,xx",
        " n,,n=,r=abc",
    };
    struct scram_secret sec;
    assert_int_equal(scram_secret_parse(RFC_VERIFIER, &sec), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *reply = NULL;
        struct scram_server *s = scram_server_new(&sec);
        int rc = server_first(s, bad[i], &reply);
        if (rc != SCRAM_EPROTO) {
            fail_msg("client-first \"%s\": rc %d", bad[i], rc);
        }
        assert_null(reply);
        scram_server_free(s);
    }
}

static void test_bad_client_first_bytes(void **state)
{
    (void)state;
    static char huge[SCRAM_MSG_MAX + 64];
    struct scram_secret sec;
    const char *reply = NULL;
    assert_int_equal(scram_secret_parse(RFC_VERIFIER, &sec), 0);
    struct scram_server *s = scram_server_new(&sec);
    assert_int_equal(scram_server_first(s, "n,,n=,r=a\0c", 11, &reply), SCRAM_EPROTO);
    scram_server_free(s);
    s = scram_server_new(&sec);
    assert_int_equal(scram_server_first(s, NULL, 0, &reply), SCRAM_EPROTO);
    scram_server_free(s);
    memset(huge, 'a', sizeof huge - 1);
    memcpy(huge, "n,,n=,r=", 8);
    s = scram_server_new(&sec);
    assert_int_equal(server_first(s, huge, &reply), SCRAM_EPROTO);
    scram_server_free(s);
    s = scram_server_new(&sec); /* out of order */
    assert_int_equal(server_final(s, RFC_CLIENT_FINAL, &reply), SCRAM_EPROTO);
    scram_server_free(s);
    assert_null(reply);
}

static void test_accepted_client_first(void **state)
{
    (void)state;
    static const char *const good[] = {
        "n,,n=,r=abc",
        "y,,n=,r=abc",
        "n,,n=user,r=abc,x=extension,y=another",
        "n,,n=a=2Cb,r=!\"#$%&'()*+-./~",
    };
    struct scram_secret sec;
    assert_int_equal(scram_secret_parse(RFC_VERIFIER, &sec), 0);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *reply = NULL;
        struct scram_server *s = scram_server_new(&sec);
        if (server_first(s, good[i], &reply) != 0) {
            fail_msg("client-first \"%s\" refused", good[i]);
        }
        const char *r = strstr(good[i], ",r=") + 3;
        size_t rl = strcspn(r, ",");
        assert_memory_equal(reply, "r=", 2);
        assert_memory_equal(reply + 2, r, rl);
        assert_int_equal(strlen(reply + 2 + rl), strlen(",s=" RFC_SALT_B64 ",i=4096") + 24);
        scram_server_free(s);
    }
}

/* Independent proof computation (OpenSSL directly) for a given AuthMessage. */
static void make_proof(const char *password, const char *auth, char out[64])
{
    uint8_t salted[32], ckey[32], stored[32], sig[32];
    unsigned int n = 0;
    assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), rfc_salt, sizeof rfc_salt,
                                       4096, EVP_sha256(), 32, salted),
                     1);
    assert_non_null(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ckey, &n));
    assert_non_null(SHA256(ckey, 32, stored));
    assert_non_null(HMAC(EVP_sha256(), stored, 32, (const uint8_t *)auth, strlen(auth), sig, &n));
    for (int i = 0; i < 32; i++) {
        sig[i] ^= ckey[i];
    }
    assert_int_equal(EVP_EncodeBlock((unsigned char *)out, sig, 32), 44);
}

/* A client that sent "y,,": c= must be "eSws" (base64 of "y,,"), "biws" is refused. */
static void test_gs2_y_flag(void **state)
{
    (void)state;
    struct scram_secret sec;
    const char *first = NULL, *fin = NULL;
    char auth[512], msg[512], proof[64];
    assert_int_equal(scram_secret_parse(RFC_VERIFIER, &sec), 0);
    for (int pass = 0; pass < 2; pass++) {
        const char *cb = pass == 0 ? "eSws" : "biws";
        struct scram_server *s = scram_server_new(&sec);
        assert_int_equal(server_first(s, "y,,n=,r=abc", &first), 0);
        size_t nl = strcspn(first, ",");
        snprintf(auth, sizeof auth, "n=,r=abc,%s,c=%s,%.*s", first, cb, (int)nl, first);
        make_proof("pencil", auth, proof);
        snprintf(msg, sizeof msg, "c=%s,%.*s,p=%s", cb, (int)nl, first, proof);
        assert_int_equal(server_final(s, msg, &fin), pass == 0 ? 0 : SCRAM_EPROTO);
        scram_server_free(s);
    }
}

/* Expands a template: "{n}" becomes the nonce, "{p}" the proof. */
static void expand(const char *tmpl, const char *nonce, const char *proof, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *t = tmpl; *t != '\0';) {
        const char *rep = strncmp(t, "{n}", 3) == 0   ? nonce
                          : strncmp(t, "{p}", 3) == 0 ? proof
                                                      : NULL;
        size_t n = rep ? strlen(rep) : 1;
        assert_true(o + n < cap);
        memcpy(out + o, rep ? rep : t, n);
        o += n;
        t += rep ? 3 : 1;
    }
    out[o] = '\0';
}

/* Runs one client-final-message template against a fresh server; see expand(). */
static int try_final(const struct scram_secret *sec, const char *tmpl)
{
    const char *first = NULL, *fin = NULL;
    char auth[512], msg[4096], proof[64], nonce[128];
    struct scram_server *s = scram_server_new(sec);
    assert_int_equal(server_first(s, "n,,n=,r=abc", &first), 0);
    size_t nl = strcspn(first, ",");
    snprintf(nonce, sizeof nonce, "%.*s", (int)(nl - 2), first + 2);
    snprintf(auth, sizeof auth, "n=,r=abc,%s,c=biws,r=%s", first, nonce);
    make_proof("pencil", auth, proof);
    expand(tmpl, nonce, proof, msg, sizeof msg);
    int rc = server_final(s, msg, &fin);
    scram_server_free(s);
    return rc;
}

static void test_bad_client_final(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "c=biws,r={n}",           /* no proof */
        "c=biws,r={n},p={p},x=1", /* proof not last */
        "c=biws,r={n},p={p},",    /* trailing comma */
        "c=eSws,r={n},p={p}",     /* gs2 flag was n */
        "c=,r={n},p={p}",         /* empty binding */
        "c=biws,r={n},c=biws,p={p}x",
        "r={n},c=biws,p={p}",                                         /* order */
        "c=biws,r={n}X,p={p}",                                        /* nonce with extra */
        "c=biws,r=abc,p={p}",                                         /* client nonce only */
        "c=biws,r=xyz,p={p}",                                         /* someone else's */
        "c=biws,r={n},p=!!!!",                                        /* bad base64 */
        "c=biws,r={n},p=AAAA",                                        /* short proof */
        "c=biws,r={n},p={p}AAAA",                                     /* long proof */
        "c=biws,r={n},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ", /* no padding */
        "c=biws,r={n},p{p}",                                          /* no '=' */
        "c=biws",
        "c=biws,r={n},p=",
    };
    struct scram_secret sec;
    assert_int_equal(scram_secret_parse(RFC_VERIFIER, &sec), 0);
    assert_int_equal(try_final(&sec, "c=biws,r={n},p={p}"), 0);
    assert_int_equal(try_final(&sec, "c=biws,r={n},x=ext,p={p}"), SCRAM_EAUTH); /* in AuthMessage */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = try_final(&sec, bad[i]);
        if (rc != SCRAM_EPROTO) {
            fail_msg("client-final \"%s\": rc %d", bad[i], rc);
        }
    }
}

static void test_bad_verifiers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "md5c0ffee",
        "SCRAM-SHA-256$",
        "SCRAM-SHA-256$4096",
        "SCRAM-SHA-256$4096:" RFC_SALT_B64,
        "SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        "SCRAM-SHA-256$0:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$-1:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$99999999999:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22ZaJ0S*Y7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:" RFC_SALT_B64 "$AAAA:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=x",
        "SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU",
        "SCRAM-SHA-256$ 4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    };
    struct scram_secret sec;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (scram_secret_parse(bad[i], &sec) != SCRAM_EPROTO) {
            fail_msg("verifier \"%s\" accepted", bad[i]);
        }
    }
    static char huge[SCRAM_VERIFIER_MAX + 100];
    memset(huge, 'A', sizeof huge - 1);
    memcpy(huge, "SCRAM-SHA-256$4096:", 19);
    assert_int_equal(scram_secret_parse(huge, &sec), SCRAM_EPROTO);
    assert_int_equal(scram_secret_parse(NULL, &sec), SCRAM_EPROTO);
}

/* Client side against hostile or broken servers. */
static int client_try(const char *server_first_msg)
{
    const char *m = NULL;
    struct scram_client *c = scram_client_new("pencil");
    assert_int_equal(scram_client_set_nonce(c, RFC_CNONCE), 0);
    assert_int_equal(scram_client_first(c, &m), 0);
    int rc = scram_client_final(c, server_first_msg, strlen(server_first_msg), &m);
    scram_client_free(c);
    return rc;
}

static void test_client_bad_server_first(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "r=" RFC_CNONCE ",s=" RFC_SALT_B64 ",i=4096", /* server added nothing */
        "r=xOprNGfwEbeRWgbNEkqOabc,s=" RFC_SALT_B64 ",i=4096",
        "r=" RFC_CNONCE "abc,i=4096",
        "r=" RFC_CNONCE "abc,s=,i=4096",
        "r=" RFC_CNONCE "abc,s=W22Z,,i=4096",
        "r=" RFC_CNONCE "abc,s=" RFC_SALT_B64 ",i=0",
        "r=" RFC_CNONCE "abc,s=" RFC_SALT_B64 ",i=99999999999",
        "r=" RFC_CNONCE "abc,s=" RFC_SALT_B64 ",i=4096x",
        "r=" RFC_CNONCE "abc,s=" RFC_SALT_B64 ",i=4096,x=1",
        "r=" RFC_CNONCE "abc,s=" RFC_SALT_B64,
        "m=ext,r=" RFC_CNONCE "abc,s=" RFC_SALT_B64 ",i=4096",
        /* a 66-byte salt is over SCRAM_SALT_MAX */
        "r=" RFC_CNONCE
        "abc,s=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAA,i=4096",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = client_try(bad[i]);
        if (rc != SCRAM_EPROTO) {
            fail_msg("server-first \"%s\": rc %d", bad[i], rc);
        }
    }
    assert_int_equal(client_try(RFC_SERVER_FIRST), 0);
}

static void test_client_bad_server_final(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        int rc;
    } cases[] = {
        {RFC_SERVER_FINAL, 0},
        {"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", SCRAM_EAUTH},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", SCRAM_EPROTO}, /* non-canonical */
        {"e=invalid-proof", SCRAM_EAUTH},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", SCRAM_EPROTO},
        {"v=AAAA", SCRAM_EPROTO},
        {"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", SCRAM_EPROTO},
        {RFC_SERVER_FINAL ",x=1", SCRAM_EPROTO},
        {"", SCRAM_EPROTO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *m = NULL;
        struct scram_client *c = scram_client_new("pencil");
        assert_int_equal(scram_client_set_user(c, "user"), 0);
        assert_int_equal(scram_client_set_nonce(c, RFC_CNONCE), 0);
        assert_int_equal(scram_client_first(c, &m), 0);
        assert_int_equal(scram_client_final(c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &m), 0);
        int rc = scram_client_verify(c, cases[i].msg, strlen(cases[i].msg));
        if (rc != cases[i].rc) {
            fail_msg("server-final \"%s\": rc %d, want %d", cases[i].msg, rc, cases[i].rc);
        }
        scram_client_free(c);
    }
}

static void test_client_seams(void **state)
{
    (void)state;
    static char long_pw[SCRAM_PASSWORD_MAX + 2];
    const char *m = NULL;
    struct scram_secret sec;
    struct scram_client *c = scram_client_new("x");
    assert_int_equal(scram_client_set_nonce(c, "a,b"), SCRAM_EPROTO);
    assert_int_equal(scram_client_set_nonce(c, ""), SCRAM_EPROTO);
    assert_int_equal(scram_client_set_user(c, "a,b=c"), 0);
    assert_int_equal(scram_client_set_nonce(c, "nonce"), 0);
    assert_int_equal(scram_client_first(c, &m), 0);
    assert_string_equal(m, "n,,n=a=2Cb=3Dc,r=nonce");
    assert_int_equal(scram_client_first(c, &m), SCRAM_EPROTO);
    assert_int_equal(scram_client_set_nonce(c, "late"), SCRAM_EPROTO);
    assert_int_equal(scram_client_verify(c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)),
                     SCRAM_EPROTO);
    scram_client_free(c);
    memset(long_pw, 'p', sizeof long_pw - 1);
    assert_null(scram_client_new(long_pw));
    assert_null(scram_client_new(NULL));
    assert_int_equal(scram_secret_derive(long_pw, rfc_salt, 16, 4096, &sec), SCRAM_EPROTO);
    assert_int_equal(scram_secret_derive("x", rfc_salt, 0, 4096, &sec), SCRAM_EPROTO);
    assert_int_equal(scram_secret_derive("x", rfc_salt, 16, 0, &sec), SCRAM_EPROTO);
    assert_null(scram_server_new(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_verifier),
        cmocka_unit_test(test_rfc7677_server),
        cmocka_unit_test(test_rfc7677_client),
        cmocka_unit_test(test_round_trip_verifier),
        cmocka_unit_test(test_round_trip_password),
        cmocka_unit_test(test_wrong_password_fails_for_good),
        cmocka_unit_test(test_bad_client_first),
        cmocka_unit_test(test_bad_client_first_bytes),
        cmocka_unit_test(test_accepted_client_first),
        cmocka_unit_test(test_gs2_y_flag),
        cmocka_unit_test(test_bad_client_final),
        cmocka_unit_test(test_bad_verifiers),
        cmocka_unit_test(test_client_bad_server_first),
        cmocka_unit_test(test_client_bad_server_final),
        cmocka_unit_test(test_client_seams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
