/* tests/unit/test_verify_live.c: pure parts of pgdual-verify --live: the repair-log JSON and its
 * stdout line, the --resume file format, option parsing, --tables-db parsing, key-range SQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tools/verify/console.h"
#include "tools/verify/discover.h"
#include "tools/verify/options.h"
#include "tools/verify/replog.h"
#include "tools/verify/resume.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

/* A string literal as the char * the tool's structs hold (never written through). */
#define W(s) ((char *)(uintptr_t)(s))

static void test_replog_update(void **state)
{
    (void)state;
    const char *names[] = {"region", "day"}, *vals[] = {"r\"1", "2000-01-01"};
    const char *cols[] = {"note"}, *before[] = {NULL};
    struct replog_entry e = {.table = "public.comp",
                             .action = "update",
                             .nkeys = 2,
                             .keynames = names,
                             .keyvals = vals,
                             .ncols = 1,
                             .cols = cols,
                             .before = before,
                             .rows = -1};
    struct strbuf b;
    strbuf_init(&b);
    replog_json(&b, "2024-01-01T00:00:00.000Z", 3, &e);
    assert_string_equal(b.p, "{\"time\":\"2024-01-01T00:00:00.000Z\",\"pass\":3,"
                             "\"table\":\"public.comp\",\"action\":\"update\","
                             "\"key\":{\"region\":\"r\\\"1\",\"day\":\"2000-01-01\"},"
                             "\"columns\":[\"note\"],\"before\":{\"note\":null}}");
    strbuf_reset(&b);
    replog_text(&b, 3, &e);
    assert_string_equal(b.p, "repair: pass 3 public.comp update (region, day)=(r\"1, 2000-01-01) "
                             "columns: note");
    strbuf_free(&b);
}

static void test_replog_copy_range(void **state)
{
    (void)state;
    const char *names[] = {"id"}, *hi[] = {"100"};
    struct replog_entry e = {.table = "public.t",
                             .action = "copy_range",
                             .nkeys = 1,
                             .keynames = names,
                             .rows = 99,
                             .lo = NULL,
                             .hi = hi};
    struct strbuf b;
    strbuf_init(&b);
    replog_json(&b, "T", 1, &e);
    assert_string_equal(b.p, "{\"time\":\"T\",\"pass\":1,\"table\":\"public.t\","
                             "\"action\":\"copy_range\",\"rows\":99,\"lo\":null,"
                             "\"hi\":{\"id\":\"100\"}}");
    strbuf_reset(&b);
    replog_text(&b, 1, &e);
    assert_string_equal(b.p, "repair: pass 1 public.t copy_range rows 99 from start to (id)=(100)");
    strbuf_free(&b);
}

static void test_resume_roundtrip(void **state)
{
    (void)state;
    struct scan_range r = {.has_lo = true, .lo = W("a b\0\x01"), .lolen = 5, .has_hi = false};
    struct strbuf b;
    strbuf_init(&b);
    resume_format_range(&b, "public.t", 4, &r);
    assert_string_equal(b.p, "range public.t 4 6120620001 -\n");
    b.p[b.len - 1] = '\0';
    struct resume_range out;
    assert_int_equal(resume_parse(b.p, &out), RESUME_RANGE);
    assert_string_equal(out.table, "public.t");
    assert_int_equal(out.idx, 4);
    assert_true(out.r.has_lo && !out.r.has_hi);
    assert_int_equal(out.r.lolen, 5);
    assert_memory_equal(out.r.lo, "a b\0\x01", 5);
    resume_range_free(&out);
    strbuf_reset(&b);
    resume_format_done(&b, "public.t", 4, 1234);
    assert_string_equal(b.p, "done public.t 4 1234\n");
    assert_int_equal(resume_parse("done public.t 4 1234", &out), RESUME_DONE);
    assert_int_equal(out.rows, 1234);
    resume_range_free(&out);
    assert_int_equal(resume_parse("range public.t 1 6", &out), RESUME_BAD); /* torn line */
    assert_int_equal(resume_parse("range public.t 1 6x -", &out), RESUME_BAD);
    strbuf_free(&b);
}

static void test_resume_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_verify_live.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    struct resume rs;
    char err[256];
    assert_int_equal(resume_open(&rs, path, err, sizeof err), 0);
    struct scan_range v[2] = {{.has_hi = true, .hi = W("5"), .hilen = 2},
                              {.has_lo = true, .lo = W("5"), .lolen = 2}};
    assert_int_equal(resume_plan(&rs, "s.t", v, 2), 0);
    assert_int_equal(resume_done(&rs, "s.t", 1, 7), 0);
    resume_close(&rs);
    assert_int_equal(resume_open(&rs, path, err, sizeof err), 0); /* a second run */
    size_t first = 99;
    assert_int_equal(resume_find(&rs, "s.t", &first), 2);
    assert_int_equal(first, 0);
    assert_false(rs.v[0].done);
    assert_true(rs.v[1].done);
    assert_int_equal(rs.v[1].rows, 7);
    assert_int_equal(resume_find(&rs, "s.other", &first), 0);
    resume_close(&rs);
    unlink(path);
}

static int parse(struct options *o, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++) {
        argv[argc] = (char *)(uintptr_t)args[argc];
    }
    argv[argc] = NULL;
    return options_parse(o, argc, argv);
}

static void test_options_live(void **state)
{
    (void)state;
    struct options o;
    const char *ok[] = {"pgdual-verify",
                        "--old",
                        "a",
                        "--new",
                        "b",
                        "--live",
                        "--repair",
                        "--apply",
                        "--watch",
                        "5",
                        "--rate-limit",
                        "100",
                        "--max-passes",
                        "3",
                        "--repair-log",
                        "/tmp/x",
                        "--pgdual-pass",
                        "12",
                        "--tables-db",
                        "*",
                        "--lock-timeout",
                        "500",
                        NULL};
    assert_int_equal(parse(&o, ok), 0);
    assert_true(o.live && o.repair && o.apply);
    assert_int_equal(o.watch, 5);
    assert_int_equal(o.rate_limit, 100);
    assert_int_equal(o.max_passes, 3);
    assert_int_equal(o.pgdual_pass, 12);
    assert_int_equal(o.lock_timeout_ms, 500);
    assert_string_equal(o.repair_log, "/tmp/x");
    assert_string_equal(o.tables_db, "*");
    options_free(&o);
    const char *defaults[] = {"pgdual-verify", "--old",    "a",       "--new", "b",
                              "--live",        "--repair", "--apply", NULL};
    assert_int_equal(parse(&o, defaults), 0);
    assert_int_equal(o.max_passes, 10);
    assert_int_equal(o.lock_timeout_ms, 2000);
    assert_int_equal(o.rate_limit, 0);
    options_free(&o);
    const char *no_apply[] = {"pgdual-verify", "--old",    "a", "--new", "b",
                              "--live",        "--repair", NULL};
    assert_int_equal(parse(&o, no_apply), -1);
    options_free(&o);
    const char *watch_repair[] = {"pgdual-verify", "--old", "a",        "--new", "b",
                                  "--watch",       "1",     "--repair", NULL};
    assert_int_equal(parse(&o, watch_repair), -1);
    options_free(&o);
    const char *log_no_live[] = {"pgdual-verify", "--old",  "a", "--new", "b",
                                 "--repair-log",  "/tmp/x", NULL};
    assert_int_equal(parse(&o, log_no_live), -1);
    options_free(&o);
}

static void test_tables_db(void **state)
{
    (void)state;
    struct dblist l = {0};
    assert_int_equal(console_parse_tables("app:public.a,app:s.b,other:*,third", &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[0].db, "app");
    assert_false(l.v[0].all);
    assert_int_equal(l.v[0].ntables, 2);
    assert_string_equal(l.v[0].tables[0], "public.a");
    assert_string_equal(l.v[0].tables[1], "s.b");
    assert_null(l.v[0].tables[2]);
    assert_string_equal(l.v[1].db, "other");
    assert_true(l.v[1].all);
    assert_string_equal(l.v[2].db, "third");
    assert_true(l.v[2].all);
    console_dblist_free(&l);
    assert_int_equal(console_parse_tables(":public.a", &l), -1);
    console_dblist_free(&l);
}

static void test_range_sql(void **state)
{
    (void)state;
    struct discover_col cols[3] = {{.name = W("r"), .qname = W("r"), .type = W("text")},
                                   {.name = W("d"), .qname = W("d"), .type = W("date")},
                                   {.name = W("v"), .qname = W("v"), .type = W("integer")}};
    int keys[2] = {0, 1};
    struct discover_side sd = {.present = true, .cols = cols, .ncols = 3, .keys = keys, .nkeys = 2};
    struct table t = {.ref = &sd, .keycols = W("t.r, t.d")};
    struct strbuf b;
    strbuf_init(&b);
    table_range_pred(&t, &b, true, true, 1);
    assert_string_equal(b.p, "(t.r, t.d) >= ($1::text, $2::date) AND (t.r, t.d) < ($3::text, "
                             "$4::date)");
    strbuf_reset(&b);
    table_range_pred(&t, &b, false, true, 1);
    assert_string_equal(b.p, "(t.r, t.d) < ($1::text, $2::date)");
    strbuf_reset(&b);
    table_range_pred(&t, &b, false, false, 1);
    assert_string_equal(b.p, "true");
    strbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replog_update),    cmocka_unit_test(test_replog_copy_range),
        cmocka_unit_test(test_resume_roundtrip), cmocka_unit_test(test_resume_file),
        cmocka_unit_test(test_options_live),     cmocka_unit_test(test_tables_db),
        cmocka_unit_test(test_range_sql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
