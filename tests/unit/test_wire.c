/* tests/unit/test_wire.c: protocol/wire.c: reader, builders' exact bytes, decoders, scanner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/pqproto.h"
#include "protocol/wire.h"

static void test_reader_bounds_sticky(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 'h', 'i', 0, 'x'};
    struct wire_reader r;
    wire_reader_init(&r, b, sizeof b);
    assert_int_equal(wire_u8(&r), 0x01);
    assert_int_equal(wire_u16(&r), 0x0203);
    assert_int_equal(wire_u32(&r), 0x04050607);
    assert_string_equal(wire_cstr(&r), "hi");
    assert_int_equal(wire_remaining(&r), 1);
    assert_null(wire_cstr(&r)); /* "x" has no NUL */
    assert_true(r.failed);
    assert_int_equal(wire_remaining(&r), 0);
    assert_int_equal(wire_u8(&r), 0); /* sticky even though a byte is left */
    assert_null(wire_bytes(&r, 0));
    wire_reader_init(&r, b, 3);
    assert_int_equal(wire_u32(&r), 0);
    assert_true(r.failed);
    assert_int_equal(wire_u8(&r), 0);
    wire_reader_init(&r, b, 3);
    assert_non_null(wire_bytes(&r, 3));
    assert_null(wire_bytes(&r, 1));
    wire_reader_init(&r, b, 2);
    assert_null(wire_bytes(&r, SIZE_MAX)); /* no overflow in the bounds check */
}

static void assert_wbuf(const struct wbuf *b, const void *want, size_t n)
{
    assert_false(b->failed);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_builders_exact_bytes(void **state)
{
    (void)state;
    struct wbuf b;
    wbuf_init(&b);
    wire_put_ready(&b, PQ_TXN_IDLE);
    assert_wbuf(&b, "Z\0\0\0\x05I", 6);
    wbuf_reset(&b);
    wire_put_auth(&b, AUTH_REQ_OK, NULL, 0);
    assert_wbuf(&b, "R\0\0\0\x08\0\0\0\0", 9);
    wbuf_reset(&b);
    wire_put_auth(&b, AUTH_REQ_SASL, "SCRAM-SHA-256\0", 15);
    assert_wbuf(&b, "R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0", 24);
    wbuf_reset(&b);
    wire_put_parameter_status(&b, "a", "bc");
    assert_wbuf(&b,
                "S\0\0\0\x09"
                "a\0bc\0",
                10);
    wbuf_reset(&b);
    wire_put_backend_key(&b, 0x01020304, 0xa0b0c0d0);
    assert_wbuf(&b, "K\0\0\0\x0c\x01\x02\x03\x04\xa0\xb0\xc0\xd0", 13);
    wbuf_reset(&b);
    wire_put_command_complete(&b, "SELECT 1");
    assert_wbuf(&b, "C\0\0\0\x0dSELECT 1\0", 14);
    wbuf_reset(&b);
    wire_put_empty_query(&b);
    assert_wbuf(&b, "I\0\0\0\x04", 5);
    wbuf_reset(&b);
    const char *vals[] = {"ab", NULL, ""};
    wire_put_data_row(&b, 3, vals);
    assert_wbuf(&b,
                "D\0\0\0\x14\0\x03\0\0\0\x02"
                "ab\xff\xff\xff\xff\0\0\0\0",
                21);
    wbuf_reset(&b);
    const char *names[] = {"x"};
    wire_put_row_description(&b, 1, names);
    assert_wbuf(&b,
                "T\0\0\0\x1a\0\x01x\0"
                "\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0",
                27);
    wbuf_free(&b);
}

static void test_error_builder_and_parse(void **state)
{
    (void)state;
    struct wbuf b;
    struct wire_error_fields f;
    wbuf_init(&b);
    wire_put_error(&b, "FATAL", "08P01", "bad");
    assert_wbuf(&b,
                "E\0\0\0\x1f"
                "SFATAL\0VFATAL\0C08P01\0Mbad\0\0",
                32);
    assert_int_equal(wire_parse_error(b.data + 5, b.len - 5, &f), 0);
    assert_string_equal(f.severity, "FATAL");
    assert_string_equal(f.sqlstate, "08P01");
    assert_string_equal(f.message, "bad");
    wbuf_reset(&b);
    wire_put_notice(&b, "WARNING", "01000", "w");
    assert_int_equal(b.data[0], 'N');
    wbuf_free(&b);
    /* 'V' wins over the localized 'S' in either order; unknown fields are skipped. */
    static const uint8_t loc[] = "SFEHLER\0Xwhatever\0VERROR\0C42P01\0\0";
    assert_int_equal(wire_parse_error(loc, sizeof loc - 1, &f), 0);
    assert_string_equal(f.severity, "ERROR");
    assert_null(f.message);
    static const uint8_t loc2[] = "VERROR\0SFEHLER\0\0";
    assert_int_equal(wire_parse_error(loc2, sizeof loc2 - 1, &f), 0);
    assert_string_equal(f.severity, "ERROR");
    static const uint8_t trunc[] = "SERROR\0Mno terminator";
    assert_int_equal(wire_parse_error(trunc, sizeof trunc - 1, &f), WIRE_ETRUNC);
    static const uint8_t noend[] = "SERROR\0";
    assert_int_equal(wire_parse_error(noend, sizeof noend - 1, &f), WIRE_ETRUNC);
    assert_int_equal(wire_parse_error(noend, 0, &f), WIRE_ETRUNC);
}

/* A cut error body keeps its complete fields only, terminated: never a cut value. */
static void keep_case(const char *in, size_t inlen, const char *want, size_t wantlen)
{
    struct wbuf b;
    wbuf_init(&b);
    wbuf_put_bytes(&b, in, inlen);
    wire_error_keep_complete_fields(&b);
    assert_wbuf(&b, want, wantlen);
    struct wire_error_fields f;
    assert_int_equal(wire_parse_error(b.data, b.len, &f), 0);
    wbuf_free(&b);
}

static void test_error_keep_complete_fields(void **state)
{
    (void)state;
    keep_case("SERROR\0VERROR\0C2", 16, "SERROR\0VERROR\0\0", 15); /* cut in a value */
    keep_case("SERROR\0VERROR\0C", 15, "SERROR\0VERROR\0\0", 15);  /* cut after a code */
    keep_case("SERROR\0C23505\0", 14, "SERROR\0C23505\0\0", 15);   /* cut after a field */
    keep_case("SERROR\0\0", 8, "SERROR\0\0", 8);                   /* not cut at all */
    keep_case("SERR", 4, "\0", 1);                                 /* no field whole */
    keep_case("", 0, "\0", 1);
}

static void test_wbuf_growth(void **state)
{
    (void)state;
    struct wbuf b;
    wbuf_init(&b);
    size_t m = wbuf_begin_msg(&b, 'd');
    for (int i = 0; i < 10000; i++) {
        wbuf_put_u8(&b, (uint8_t)i);
    }
    wbuf_end_msg(&b, m);
    assert_false(b.failed);
    assert_int_equal(b.len, 10005);
    assert_memory_equal(b.data, "d\0\0\x27\x14", 5); /* 10004 */
    assert_int_equal(b.data[10004], (uint8_t)9999);
    wbuf_put_u16(&b, 0xabcd);
    wbuf_put_u32(&b, 0x01020304);
    wbuf_put_cstr(&b, "z");
    assert_memory_equal(b.data + 10005, "\xab\xcd\x01\x02\x03\x04z\0", 8);
    wbuf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

/* Startup packets: body = after the 4-byte length. */
static void test_startup_v3(void **state)
{
    (void)state;
    static const uint8_t p[] = "\0\x03\0\0user\0alice\0database\0db\0application_name\0\0\0";
    struct wire_startup s;
    assert_int_equal(wire_parse_startup(p, sizeof p - 1, &s), 0);
    assert_int_equal(s.code, PG_PROTOCOL_V3);
    assert_int_equal(s.nparams, 3);
    assert_string_equal(wire_startup_param(&s, "user"), "alice");
    assert_string_equal(wire_startup_param(&s, "database"), "db");
    assert_string_equal(wire_startup_param(&s, "application_name"), "");
    assert_null(wire_startup_param(&s, "options"));
}

static void test_startup_special(void **state)
{
    (void)state;
    struct wire_startup s;
    static const uint8_t ssl[] = {0x04, 0xd2, 0x16, 0x2f}; /* 80877103 */
    assert_int_equal(wire_parse_startup(ssl, 4, &s), 0);
    assert_int_equal(s.code, 80877103);
    assert_int_equal(s.code, NEGOTIATE_SSL_CODE);
    static const uint8_t ssl_extra[] = {0x04, 0xd2, 0x16, 0x2f, 0};
    assert_int_equal(wire_parse_startup(ssl_extra, 5, &s), WIRE_EPROTO);
    static const uint8_t gss[] = {0x04, 0xd2, 0x16, 0x30};
    assert_int_equal(wire_parse_startup(gss, 4, &s), 0);
    assert_int_equal(s.code, NEGOTIATE_GSS_CODE);
    static const uint8_t cancel[] = {0x04, 0xd2, 0x16, 0x2e, 0,    0,
                                     0x30, 0x39, 0xde, 0xad, 0xbe, 0xef};
    assert_int_equal(wire_parse_startup(cancel, sizeof cancel, &s), 0);
    assert_int_equal(s.code, 80877102);
    assert_int_equal(s.cancel_pid, 12345);
    assert_int_equal(s.cancel_secret, 0xdeadbeef);
    assert_int_equal(wire_parse_startup(cancel, sizeof cancel - 1, &s), WIRE_ETRUNC);
    assert_int_equal(wire_parse_startup(cancel, 3, &s), WIRE_ETRUNC);
    assert_int_equal(wire_parse_startup(cancel, 0, &s), WIRE_ETRUNC);
}

static void test_startup_bad(void **state)
{
    (void)state;
    struct wire_startup s;
    static const struct {
        const char *body;
        size_t len;
        int rc;
    } cases[] = {
        {"\0\x03\0\0user\0alice\0", 15, WIRE_ETRUNC},    /* missing terminator */
        {"\0\x03\0\0user\0alice", 14, WIRE_ETRUNC},      /* truncated value */
        {"\0\x03\0\0user", 8, WIRE_ETRUNC},              /* truncated name */
        {"\0\x03\0\0database\0db\0\0", 17, WIRE_EPROTO}, /* no user */
        {"\0\x03\0\0user\0\0\0", 11, WIRE_EPROTO},       /* empty user */
        {"\0\x03\0\0\0", 5, WIRE_EPROTO},                /* no params at all */
        {"\0\x03\0\0user\0a\0\0junk", 16, WIRE_EPROTO},  /* bytes after terminator */
        {"\0\x03\0", 3, WIRE_ETRUNC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = wire_parse_startup((const uint8_t *)cases[i].body, cases[i].len, &s);
        if (rc != cases[i].rc) {
            fail_msg("case %zu: rc %d, want %d", i, rc, cases[i].rc);
        }
    }
}

static void test_startup_too_many_params(void **state)
{
    (void)state;
    static uint8_t p[4 + (WIRE_STARTUP_MAX_PARAMS + 1) * 8 + 16];
    size_t n = 0;
    struct wire_startup s;
    memcpy(p, "\0\x03\0\0user\0u\0", 11);
    n = 11;
    for (int i = 0; i < WIRE_STARTUP_MAX_PARAMS; i++) {
        p[n++] = (uint8_t)('A' + i % 26);
        p[n++] = (uint8_t)('a' + i / 26);
        p[n++] = 0;
        p[n++] = 'v';
        p[n++] = 0;
    }
    p[n++] = 0;
    assert_int_equal(wire_parse_startup(p, n, &s), WIRE_EPROTO);
}

/* ---- scanner ---------------------------------------------------------------------------- */

struct rec {
    char log[4096]; /* "B<type><len>" "b<n>" "E" events, as text */
    size_t loglen;
    int stop_at_begin; /* return this from begin of message number stop_msg */
    int stop_msg;
    int stop_at_end;
    int msgs; /* begins seen */
    uint8_t body[1024];
    size_t bodylen;
};

static void rec_add(struct rec *r, const char *s)
{
    size_t n = strlen(s);
    assert_true(r->loglen + n < sizeof r->log);
    memcpy(r->log + r->loglen, s, n + 1);
    r->loglen += n;
}

static int on_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct rec *r = ctx;
    char ev[32];
    snprintf(ev, sizeof ev, "B%c%u ", type, len);
    rec_add(r, ev);
    return ++r->msgs == r->stop_msg ? r->stop_at_begin : 0;
}

static int on_body(void *ctx, const uint8_t *p, size_t n)
{
    struct rec *r = ctx;
    assert_true(n > 0);
    assert_true(r->bodylen + n <= sizeof r->body);
    memcpy(r->body + r->bodylen, p, n);
    r->bodylen += n;
    return 0;
}

static int on_end(void *ctx)
{
    struct rec *r = ctx;
    rec_add(r, "E ");
    return r->msgs == r->stop_msg ? r->stop_at_end : 0;
}

static const struct wire_scan_ops rec_ops = {on_begin, on_body, on_end};

/* Three messages: Query "select 1", Sync (empty body), CopyData of 3 bytes. */
static const uint8_t stream[] = "Q\0\0\0\x0dselect 1\0"
                                "S\0\0\0\x04"
                                "d\0\0\0\x07xyz";
#define STREAM_LEN (sizeof stream - 1)
#define STREAM_LOG "BQ9 E BS0 E Bd3 E "

static void test_scan_whole_and_split(void **state)
{
    (void)state;
    for (size_t a = 0; a <= STREAM_LEN; a++) {
        for (size_t b = a; b <= STREAM_LEN; b++) {
            struct wire_scanner s;
            struct rec r = {0};
            size_t cut[4] = {0, a, b, STREAM_LEN}, used = 0;
            wire_scanner_init(&s, 1 << 20);
            for (int k = 0; k < 3; k++) {
                int rc =
                    wire_scan_feed(&s, stream + cut[k], cut[k + 1] - cut[k], &rec_ops, &r, &used);
                assert_int_equal(rc, 0);
                assert_int_equal(used, cut[k + 1] - cut[k]);
            }
            assert_string_equal(r.log, STREAM_LOG);
            assert_int_equal(r.bodylen, 9 + 3);
            assert_memory_equal(r.body, "select 1\0xyz", 12);
            assert_true(wire_scanner_at_boundary(&s));
        }
    }
}

static void test_scan_byte_by_byte(void **state)
{
    (void)state;
    struct wire_scanner s;
    struct rec r = {0};
    size_t used = 0;
    wire_scanner_init(&s, 1 << 20);
    for (size_t i = 0; i < STREAM_LEN; i++) {
        assert_int_equal(wire_scan_feed(&s, stream + i, 1, &rec_ops, &r, &used), 0);
        assert_int_equal(used, 1);
        bool boundary = i + 1 == 14 || i + 1 == 19 || i + 1 == STREAM_LEN;
        assert_int_equal(wire_scanner_at_boundary(&s), boundary);
    }
    assert_string_equal(r.log, STREAM_LOG);
    assert_int_equal(wire_scan_feed(&s, stream, 0, &rec_ops, &r, &used), 0);
    assert_int_equal(used, 0);
}

static void test_scan_bad_length(void **state)
{
    (void)state;
    static const uint8_t huge[] = {'Q', 0x7f, 0xff, 0xff, 0xff, 'x'};
    static const uint8_t small[] = {'Q', 0, 0, 0, 3};
    static const uint8_t over[] = {'Q', 0, 0, 0x01, 0x01}; /* 257 > max 256 */
    static const uint8_t at_max[] = {'Q', 0, 0, 0x01, 0x00};
    const uint8_t *bad[] = {huge, small, over};
    for (int i = 0; i < 3; i++) {
        struct wire_scanner s;
        struct rec r = {0};
        size_t used = 99;
        wire_scanner_init(&s, 256);
        assert_int_equal(wire_scan_feed(&s, bad[i], 5, &rec_ops, &r, &used), WIRE_EBADLEN);
        assert_true(used <= 5);
        assert_int_equal(r.msgs, 0);
        /* sticky: the stream cannot be resynchronised */
        assert_int_equal(wire_scan_feed(&s, stream, STREAM_LEN, &rec_ops, &r, &used), WIRE_EBADLEN);
        assert_int_equal(r.msgs, 0);
    }
    struct wire_scanner s;
    struct rec r = {0};
    size_t used = 0;
    wire_scanner_init(&s, 256);
    assert_int_equal(wire_scan_feed(&s, at_max, 5, &rec_ops, &r, &used), 0);
    assert_int_equal(r.msgs, 1);
    /* split header: the length is checked once it is complete */
    wire_scanner_init(&s, 256);
    assert_int_equal(wire_scan_feed(&s, huge, 3, &rec_ops, &r, &used), 0);
    assert_int_equal(used, 3);
    assert_int_equal(wire_scan_feed(&s, huge + 3, 3, &rec_ops, &r, &used), WIRE_EBADLEN);
}

/* A positive value from begin stops right after that message, which may span feeds. */
static void test_scan_stop_at_begin(void **state)
{
    (void)state;
    int bad = 0;
    for (int msg = 1; msg <= 3; msg++) {
        static const size_t ends[] = {14, 19, STREAM_LEN};
        for (size_t chunk = 1; chunk <= STREAM_LEN; chunk++) {
            struct wire_scanner s;
            struct rec r = {.stop_msg = msg, .stop_at_begin = 7};
            size_t off = 0, used = 0;
            int rc = 0;
            wire_scanner_init(&s, 1 << 20);
            while (off < STREAM_LEN && rc == 0) {
                size_t n = STREAM_LEN - off < chunk ? STREAM_LEN - off : chunk;
                rc = wire_scan_feed(&s, stream + off, n, &rec_ops, &r, &used);
                off += used;
            }
            if (rc != 7 || off != ends[msg - 1] || !wire_scanner_at_boundary(&s) || r.msgs != msg) {
                print_error("stop at msg %d, chunk %zu: rc %d off %zu (want %zu) boundary %d\n",
                            msg, chunk, rc, off, ends[msg - 1], wire_scanner_at_boundary(&s));
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
}

static void test_scan_stop_at_end_and_abort(void **state)
{
    (void)state;
    struct wire_scanner s;
    struct rec r = {.stop_msg = 2, .stop_at_end = 1};
    size_t used = 0;
    wire_scanner_init(&s, 1 << 20);
    assert_int_equal(wire_scan_feed(&s, stream, STREAM_LEN, &rec_ops, &r, &used), 1);
    assert_int_equal(used, 19);
    assert_true(wire_scanner_at_boundary(&s));
    r.stop_msg = 0;
    assert_int_equal(wire_scan_feed(&s, stream + used, STREAM_LEN - used, &rec_ops, &r, &used), 0);
    assert_int_equal(used, STREAM_LEN - 19);
    assert_string_equal(r.log, STREAM_LOG);
    /* a negative value aborts at once */
    struct rec r2 = {.stop_msg = 1, .stop_at_begin = -5};
    wire_scanner_init(&s, 1 << 20);
    assert_int_equal(wire_scan_feed(&s, stream, STREAM_LEN, &rec_ops, &r2, &used), -5);
    assert_int_equal(used, 5);
    assert_int_equal(r2.bodylen, 0);
}

static void test_scan_null_callbacks(void **state)
{
    (void)state;
    static const struct wire_scan_ops none = {NULL, NULL, NULL};
    struct wire_scanner s;
    size_t used = 0;
    wire_scanner_init(&s, 1 << 20);
    assert_int_equal(wire_scan_feed(&s, stream, STREAM_LEN, &none, NULL, &used), 0);
    assert_int_equal(used, STREAM_LEN);
    assert_true(wire_scanner_at_boundary(&s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_bounds_sticky),
        cmocka_unit_test(test_builders_exact_bytes),
        cmocka_unit_test(test_error_builder_and_parse),
        cmocka_unit_test(test_wbuf_growth),
        cmocka_unit_test(test_startup_v3),
        cmocka_unit_test(test_startup_special),
        cmocka_unit_test(test_startup_bad),
        cmocka_unit_test(test_startup_too_many_params),
        cmocka_unit_test(test_scan_whole_and_split),
        cmocka_unit_test(test_error_keep_complete_fields),
        cmocka_unit_test(test_scan_byte_by_byte),
        cmocka_unit_test(test_scan_bad_length),
        cmocka_unit_test(test_scan_stop_at_begin),
        cmocka_unit_test(test_scan_stop_at_end_and_abort),
        cmocka_unit_test(test_scan_null_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
