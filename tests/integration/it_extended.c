/* tests/integration/it_extended.c: extended protocol through pgdual: pipelines, named and unnamed
 * prepared statements, binary parameters and results, NULLs, UTF-8 and bytea byte-exactness, and an
 * error inside a pipeline. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

#define OID_INT4   23
#define OID_INT8   20
#define OID_FLOAT8 701
#define OID_BYTEA  17
#define OID_TEXT   25

/* Checks on the new cluster only make sense when pgdual mirrors to it. */
#define NEW_ONLY(stmt)              \
    do {                            \
        if (proxy_mirrors(&g_px)) { \
            stmt;                   \
        }                           \
    } while (0)

static struct proxy g_px;

static void put_be32(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        b[i] = (uint8_t)(v >> (24 - 8 * i));
    }
}

static void put_be64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

/* Next result of a pipeline; NULL results between queries are checked by the caller. */
static PGresult *expect_result(PGconn *c, ExecStatusType want)
{
    PGresult *r = PQgetResult(c);
    CHECK_RES(r, want);
    return r;
}

static void expect_end_of_query(PGconn *c)
{
    PGresult *r = PQgetResult(c);
    CHECK(r == NULL);
    PQclear(r);
}

static void case_setup(PGconn *c)
{
    it_case("setup tables");
    PGresult *r = PQexec(c, "CREATE TABLE t (id int PRIMARY KEY, v text);"
                            "CREATE TABLE u (id int PRIMARY KEY, s text, b bytea)");
    REQUIRE_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
}

static void case_pipeline(PGconn *c)
{
    enum { N = 60 };
    it_case("pipelined batch of INSERT ... RETURNING and SELECT");
    REQUIRE_EQ(PQenterPipelineMode(c), 1);
    for (int i = 0; i < N; i++) {
        char id[16], v[32];
        snprintf(id, sizeof id, "%d", i + 1);
        snprintf(v, sizeof v, "row-%d", i + 1);
        const char *ins[] = {id, v};
        const char *sel[] = {id};
        CHECK_EQ(PQsendQueryParams(c,
                                   "INSERT INTO t (id, v) VALUES ($1::int4, $2::text) "
                                   "RETURNING id * 10, v",
                                   2, NULL, ins, NULL, NULL, 0),
                 1);
        CHECK_EQ(PQsendQueryParams(c, "SELECT $1::int4 + 1000", 1, NULL, sel, NULL, NULL, 0), 1);
    }
    CHECK_EQ(PQpipelineSync(c), 1);
    for (int i = 0; i < N; i++) {
        char want[32];
        PGresult *r = expect_result(c, PGRES_TUPLES_OK);
        snprintf(want, sizeof want, "%d", (i + 1) * 10);
        CHECK_EQ(PQntuples(r), 1);
        CHECK_STR(PQgetvalue(r, 0, 0), want);
        snprintf(want, sizeof want, "row-%d", i + 1);
        CHECK_STR(PQgetvalue(r, 0, 1), want);
        CHECK_STR(PQcmdStatus(r), "INSERT 0 1");
        PQclear(r);
        expect_end_of_query(c);
        r = expect_result(c, PGRES_TUPLES_OK);
        snprintf(want, sizeof want, "%d", i + 1 + 1000);
        CHECK_STR(PQgetvalue(r, 0, 0), want);
        PQclear(r);
        expect_end_of_query(c);
    }
    PQclear(expect_result(c, PGRES_PIPELINE_SYNC));
    CHECK_EQ(PQexitPipelineMode(c), 1);
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, "SELECT count(*) FROM t"), N);
    NEW_ONLY(CHECK_EQ(proxy_query_ll(&g_px, IT_NEW, "SELECT count(*) FROM t"), N));
    NEW_ONLY(CHECK_EQ(proxy_query_ll(&g_px, IT_NEW, "SELECT sum(id) FROM t WHERE v = 'row-' || id"),
                      N * (N + 1) / 2));
}

static void exec_prepared_check(PGconn *c, const char *name, long long x)
{
    char a[32], want0[32], want1[48];
    snprintf(a, sizeof a, "%lld", x);
    snprintf(want0, sizeof want0, "%lld", x * 2);
    snprintf(want1, sizeof want1, "%lld!", x);
    const char *vals[] = {a, a};
    PGresult *r = PQexecPrepared(c, name, 2, vals, NULL, NULL, 0);
    if (CHECK_RES(r, PGRES_TUPLES_OK)) {
        CHECK_STR(PQgetvalue(r, 0, 0), want0);
        CHECK_STR(PQgetvalue(r, 0, 1), want1);
    }
    PQclear(r);
}

static void case_prepared(PGconn *c)
{
    it_case("named prepared statement reused 300 times, also pipelined");
    PGresult *r = PQprepare(c, "s_named", "SELECT $1::int8 * 2, $2::text || '!'", 2, NULL);
    REQUIRE_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    r = PQdescribePrepared(c, "s_named");
    if (CHECK_RES(r, PGRES_COMMAND_OK)) {
        CHECK_EQ(PQnparams(r), 2);
        CHECK_EQ(PQparamtype(r, 0), OID_INT8);
        CHECK_EQ(PQparamtype(r, 1), OID_TEXT);
        CHECK_EQ(PQnfields(r), 2);
    }
    PQclear(r);
    for (int i = 0; i < 200; i++) {
        exec_prepared_check(c, "s_named", (long long)i * 1000003LL - 7);
    }
    REQUIRE_EQ(PQenterPipelineMode(c), 1);
    char args[100][24];
    for (int i = 0; i < 100; i++) {
        snprintf(args[i], sizeof args[i], "%d", -i);
        const char *vals[] = {args[i], args[i]};
        CHECK_EQ(PQsendQueryPrepared(c, "s_named", 2, vals, NULL, NULL, 0), 1);
    }
    CHECK_EQ(PQpipelineSync(c), 1);
    for (int i = 0; i < 100; i++) {
        char want[24];
        r = expect_result(c, PGRES_TUPLES_OK);
        snprintf(want, sizeof want, "%d", -2 * i);
        CHECK_STR(PQgetvalue(r, 0, 0), want);
        PQclear(r);
        expect_end_of_query(c);
    }
    PQclear(expect_result(c, PGRES_PIPELINE_SYNC));
    CHECK_EQ(PQexitPipelineMode(c), 1);

    it_case("unnamed prepared statement reused, then replaced");
    r = PQprepare(c, "", "SELECT $1::int8 * 2, $2::text || '!'", 2, NULL);
    REQUIRE_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    for (int i = 0; i < 50; i++) {
        exec_prepared_check(c, "", 5000000000LL + i);
    }
    r = PQprepare(c, "", "SELECT $1::int4 - 1", 1, NULL);
    REQUIRE_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    for (int i = 0; i < 50; i++) {
        char a[16], want[16];
        snprintf(a, sizeof a, "%d", i);
        snprintf(want, sizeof want, "%d", i - 1);
        const char *vals[] = {a};
        r = PQexecPrepared(c, "", 1, vals, NULL, NULL, 0);
        if (CHECK_RES(r, PGRES_TUPLES_OK)) {
            CHECK_STR(PQgetvalue(r, 0, 0), want);
        }
        PQclear(r);
    }
    /* The named statement survived all the unnamed traffic. */
    exec_prepared_check(c, "s_named", 21);
    r = PQexec(c, "DEALLOCATE s_named");
    CHECK_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexecPrepared(c, "s_named", 0, NULL, NULL, NULL, 0);
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "26000");
    PQclear(r);
}

static void binary_round_trip(PGconn *c, int32_t i4, int64_t i8, uint64_t f8bits)
{
    uint8_t b4[4], b8[8], bf[8], bb[256], want[8];
    put_be32(b4, (uint32_t)i4);
    put_be64(b8, (uint64_t)i8);
    put_be64(bf, f8bits);
    for (int i = 0; i < 256; i++) {
        bb[i] = (uint8_t)(255 - i);
    }
    const Oid types[] = {OID_INT4, OID_INT8, OID_FLOAT8, OID_BYTEA};
    const char *vals[] = {(const char *)b4, (const char *)b8, (const char *)bf, (const char *)bb};
    const int lens[] = {4, 8, 8, 256};
    const int fmts[] = {1, 1, 1, 1};
    PGresult *r = PQexecParams(c,
                               "SELECT $1, $2, $3, $4, $1 # 1, $2 # 1, -$3, "
                               "length($4), get_byte($4, 0), get_byte($4, 255)",
                               4, types, vals, lens, fmts, 1);
    if (!CHECK_RES(r, PGRES_TUPLES_OK)) {
        PQclear(r);
        return;
    }
    const Oid ftypes[] = {OID_INT4, OID_INT8, OID_FLOAT8, OID_BYTEA,
                          OID_INT4, OID_INT8, OID_FLOAT8};
    for (int f = 0; f < 7; f++) {
        CHECK_EQ(PQftype(r, f), ftypes[f]);
        CHECK_EQ(PQfformat(r, f), 1);
    }
    CHECK_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), b4, 4);
    CHECK_MEM(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), b8, 8);
    CHECK_MEM(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), bf, 8);
    CHECK_MEM(PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3), bb, 256);
    put_be32(want, (uint32_t)i4 ^ 1u);
    CHECK_MEM(PQgetvalue(r, 0, 4), (size_t)PQgetlength(r, 0, 4), want, 4);
    put_be64(want, (uint64_t)i8 ^ 1u);
    CHECK_MEM(PQgetvalue(r, 0, 5), (size_t)PQgetlength(r, 0, 5), want, 8);
    put_be64(want, f8bits ^ 0x8000000000000000ULL);
    CHECK_MEM(PQgetvalue(r, 0, 6), (size_t)PQgetlength(r, 0, 6), want, 8);
    put_be32(want, 256);
    CHECK_MEM(PQgetvalue(r, 0, 7), (size_t)PQgetlength(r, 0, 7), want, 4);
    put_be32(want, 255);
    CHECK_MEM(PQgetvalue(r, 0, 8), (size_t)PQgetlength(r, 0, 8), want, 4);
    put_be32(want, 0);
    CHECK_MEM(PQgetvalue(r, 0, 9), (size_t)PQgetlength(r, 0, 9), want, 4);
    PQclear(r);
}

static void case_binary(PGconn *c)
{
    it_case("binary parameters and results (int4/int8/float8/bytea) byte-exact");
    binary_round_trip(c, 0, 0, 0);
    binary_round_trip(c, INT32_MIN, INT64_MIN, 0x8000000000000000ULL);             /* -0.0 */
    binary_round_trip(c, INT32_MAX, INT64_MAX, 0x400921FB54442D18ULL);             /* pi */
    binary_round_trip(c, -123456789, 0x0102030405060708LL, 0x0000000000000001ULL); /* 5e-324 */
    binary_round_trip(c, 0x7f00ff01, -2, 0x7FF0000000000000ULL);                   /* +inf */
    binary_round_trip(c, 42, 1234567890123456789LL, 0x7FEFFFFFFFFFFFFFULL);        /* DBL_MAX */
}

static void case_nulls(PGconn *c)
{
    it_case("NULL parameters and results, text and binary");
    const char *vals[] = {NULL, "x", NULL};
    PGresult *r = PQexecParams(c,
                               "SELECT $1::int4, $2::text, $3::bytea, $1::int4 IS NULL, "
                               "coalesce($3::bytea, '\\xff'::bytea), NULL::text",
                               3, NULL, vals, NULL, NULL, 0);
    if (CHECK_RES(r, PGRES_TUPLES_OK)) {
        CHECK(PQgetisnull(r, 0, 0));
        CHECK(!PQgetisnull(r, 0, 1));
        CHECK_STR(PQgetvalue(r, 0, 1), "x");
        CHECK(PQgetisnull(r, 0, 2));
        CHECK_STR(PQgetvalue(r, 0, 3), "t");
        CHECK_STR(PQgetvalue(r, 0, 4), "\\xff");
        CHECK(PQgetisnull(r, 0, 5));
    }
    PQclear(r);
    const int fmts[] = {1, 1, 1};
    const Oid types[] = {OID_INT4, OID_TEXT, OID_BYTEA};
    r = PQexecParams(c,
                     "INSERT INTO u (id, s, b) VALUES (coalesce($1, 900), $2, $3) RETURNING s, b",
                     3, types, vals, (const int[]){0, 1, 0}, fmts, 1);
    if (CHECK_RES(r, PGRES_TUPLES_OK)) {
        CHECK_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), "x", 1);
        CHECK(PQgetisnull(r, 0, 1));
    }
    PQclear(r);
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, "SELECT count(*) FROM u WHERE id = 900 AND b IS NULL"),
             1);
    NEW_ONLY(CHECK_EQ(
        proxy_query_ll(&g_px, IT_NEW, "SELECT count(*) FROM u WHERE id = 900 AND b IS NULL"), 1));
}

static long utf8_chars(const char *s)
{
    long n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        n += (*p & 0xC0) != 0x80;
    }
    return n;
}

static void check_text_on(enum it_target t, int id, const char *want)
{
    PGconn *c = proxy_connect(&g_px, t);
    if (!CHECK(c != NULL)) {
        return;
    }
    char ids[16];
    snprintf(ids, sizeof ids, "%d", id);
    const char *vals[] = {ids};
    PGresult *r =
        PQexecParams(c, "SELECT s FROM u WHERE id = $1::int4", 1, NULL, vals, NULL, NULL, 1);
    if (CHECK_RES(r, PGRES_TUPLES_OK) && CHECK_EQ(PQntuples(r), 1)) {
        CHECK_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), want, strlen(want));
    }
    PQclear(r);
    PQfinish(c);
}

static void case_unicode(PGconn *c)
{
    static const char *const texts[] = {
        "plain ascii",
        "h\xC3\xA9llo w\xC3\xB6rld \xC3\x9F", /* héllo wörld ß */
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", /* CJK, Hangul
                                                                                      */
        "emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\x89 \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB",
        "e\xCC\x81 combining, \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D rtl, \xE2\x82\xAC sign",
        "quote ' backslash \\ tab\tnewline\n end",
    };
    it_case("UTF-8 text round-trips byte-exactly (params, results, stored on both)");
    CHECK_EQ(PQclientEncoding(c), pg_char_to_encoding("UTF8"));
    for (int i = 0; i < (int)(sizeof texts / sizeof texts[0]); i++) {
        char ids[16];
        snprintf(ids, sizeof ids, "%d", 100 + i);
        const char *vals[] = {ids, texts[i]};
        PGresult *r = PQexecParams(c,
                                   "INSERT INTO u (id, s) VALUES ($1::int4, $2::text) "
                                   "RETURNING s, length(s), octet_length(s)",
                                   2, NULL, vals, NULL, NULL, 0);
        if (CHECK_RES(r, PGRES_TUPLES_OK)) {
            CHECK_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), texts[i],
                      strlen(texts[i]));
            CHECK_EQ(atol(PQgetvalue(r, 0, 1)), utf8_chars(texts[i]));
            CHECK_EQ(atol(PQgetvalue(r, 0, 2)), (long)strlen(texts[i]));
        }
        PQclear(r);
        check_text_on(IT_PGDUAL, 100 + i, texts[i]);
        check_text_on(IT_OLD, 100 + i, texts[i]);
        NEW_ONLY(check_text_on(IT_NEW, 100 + i, texts[i]));
    }
    /* Simple protocol with the literal inline: the Query message itself carries the bytes. */
    PGresult *r = PQexec(c, "SELECT '\xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC'::text AS "
                            "\"\xC3\xA9t\xC3\xA9\"");
    if (CHECK_RES(r, PGRES_TUPLES_OK)) {
        CHECK_STR(PQgetvalue(r, 0, 0), "\xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC");
        CHECK_STR(PQfname(r, 0), "\xC3\xA9t\xC3\xA9");
    }
    PQclear(r);
}

static void case_bytea256(PGconn *c)
{
    it_case("bytea with all 256 byte values, text and binary formats");
    uint8_t all[256];
    char hex[2 + 512 + 1] = "\\x";
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
        snprintf(hex + 2 + 2 * i, 3, "%02x", i);
    }
    const char *tvals[] = {hex};
    PGresult *r =
        PQexecParams(c,
                     "SELECT $1::bytea, length($1::bytea), "
                     "(SELECT sum(get_byte($1::bytea, i)) FROM generate_series(0, 255) i)",
                     1, NULL, tvals, NULL, NULL, 0);
    if (CHECK_RES(r, PGRES_TUPLES_OK)) {
        CHECK_STR(PQgetvalue(r, 0, 0), hex);
        CHECK_STR(PQgetvalue(r, 0, 1), "256");
        CHECK_STR(PQgetvalue(r, 0, 2), "32640");
    }
    PQclear(r);
    const char *bvals[] = {"777", (const char *)all};
    const Oid types[] = {OID_INT4, OID_BYTEA};
    r = PQexecParams(c, "INSERT INTO u (id, b) VALUES ($1, $2) RETURNING b", 2, types, bvals,
                     (const int[]){3, 256}, (const int[]){0, 1}, 1);
    if (CHECK_RES(r, PGRES_TUPLES_OK)) {
        CHECK_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), all, 256);
    }
    PQclear(r);
    for (enum it_target t = IT_PGDUAL; t <= (proxy_mirrors(&g_px) ? IT_NEW : IT_OLD); t++) {
        PGconn *d = proxy_connect(&g_px, t);
        if (!CHECK(d != NULL)) {
            continue;
        }
        r = PQexecParams(d, "SELECT b FROM u WHERE id = 777", 0, NULL, NULL, NULL, NULL, 1);
        if (CHECK_RES(r, PGRES_TUPLES_OK) && CHECK_EQ(PQntuples(r), 1)) {
            CHECK_MEM(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), all, 256);
        }
        PQclear(r);
        PQfinish(d);
    }
}

static void case_pipeline_error(PGconn *c)
{
    it_case("error inside a pipeline aborts the rest until Sync");
    REQUIRE_EQ(PQenterPipelineMode(c), 1);
    const char *p1000[] = {"1000"}, *p1001[] = {"1001"}, *p1002[] = {"1002"};
    const char *ins = "INSERT INTO t (id, v) VALUES ($1::int4, 'pipe')";
    CHECK_EQ(PQsendQueryParams(c, ins, 1, NULL, p1000, NULL, NULL, 0), 1);
    CHECK_EQ(
        PQsendQueryParams(c, "SELECT 1 / $1::int4", 1, NULL, (const char *[]){"0"}, NULL, NULL, 0),
        1);
    CHECK_EQ(PQsendQueryParams(c, ins, 1, NULL, p1001, NULL, NULL, 0), 1);
    CHECK_EQ(PQsendQueryParams(c, "SELECT 2", 0, NULL, NULL, NULL, NULL, 0), 1);
    CHECK_EQ(PQpipelineSync(c), 1);
    /* Second segment: must run normally after the first Sync. */
    CHECK_EQ(PQsendQueryParams(c, ins, 1, NULL, p1002, NULL, NULL, 0), 1);
    CHECK_EQ(PQpipelineSync(c), 1);

    PQclear(expect_result(c, PGRES_COMMAND_OK));
    expect_end_of_query(c);
    PGresult *r = expect_result(c, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "22012");
    PQclear(r);
    expect_end_of_query(c);
    PQclear(expect_result(c, PGRES_PIPELINE_ABORTED));
    expect_end_of_query(c);
    PQclear(expect_result(c, PGRES_PIPELINE_ABORTED));
    expect_end_of_query(c);
    PQclear(expect_result(c, PGRES_PIPELINE_SYNC));
    r = expect_result(c, PGRES_COMMAND_OK);
    CHECK_STR(PQcmdStatus(r), "INSERT 0 1");
    PQclear(r);
    expect_end_of_query(c);
    PQclear(expect_result(c, PGRES_PIPELINE_SYNC));
    CHECK_EQ(PQexitPipelineMode(c), 1);

    r = PQexec(c, "SELECT 42");
    if (CHECK_RES(r, PGRES_TUPLES_OK)) {
        CHECK_STR(PQgetvalue(r, 0, 0), "42");
    }
    PQclear(r);
    CHECK_EQ(PQtransactionStatus(c), PQTRANS_IDLE);
    /* The implicit transaction of the failed segment was rolled back on both sides. */
    const char *q = "SELECT count(*) FROM t WHERE id IN (1000, 1001)";
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, q), 0);
    NEW_ONLY(CHECK_EQ(proxy_query_ll(&g_px, IT_NEW, q), 0));
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, "SELECT count(*) FROM t WHERE id = 1002"), 1);
    NEW_ONLY(CHECK_EQ(proxy_query_ll(&g_px, IT_NEW, "SELECT count(*) FROM t WHERE id = 1002"), 1));
}

int main(int argc, char **argv)
{
    (void)argc;
    it_init(argv[0], 240);
    REQUIRE(proxy_start(&g_px, "it_extended", NULL) == 0);
    PGconn *c = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(c != NULL);
    case_setup(c);
    case_pipeline(c);
    case_prepared(c);
    case_binary(c);
    case_nulls(c);
    case_unicode(c);
    case_bytea256(c);
    case_pipeline_error(c);
    PQfinish(c);
    return it_finish();
}
