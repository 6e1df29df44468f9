/* tests/unit/test_pin_reply.c: protocol/pin.c, the bytes side: pgdual's columns stripped from
 * the primary's RowDescription and DataRows, the kept values as JSON, and what the secondary
 * runs instead (a Query with the rows inlined, or Close/Parse/Bind/Execute in a batch). Messages
 * are built by hand here and the results decoded field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/pin.h"
#include "protocol/pqproto.h"
#include "protocol/wire.h"

/* ---- hand-built messages -------------------------------------------------------------------- */

/* One RowDescription field (text column of table oid 16384, attnum i). */
static void put_field(struct wbuf *b, const char *name, uint16_t attnum)
{
    wbuf_put_cstr(b, name);
    wbuf_put_u32(b, 16384);
    wbuf_put_u16(b, attnum);
    wbuf_put_u32(b, 25);
    wbuf_put_u16(b, 0xffff);
    wbuf_put_u32(b, 0xffffffffu);
    wbuf_put_u16(b, 0);
}

static void row_description_body(struct wbuf *b, int n, const char *const *names)
{
    wbuf_put_u16(b, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        put_field(b, names[i], (uint16_t)(i + 1));
    }
}

/* A DataRow body; values[i] NULL is SQL NULL; lens[i] (when lens) gives lengths with NULs. */
static void data_row_body(struct wbuf *b, int n, const char *const *values, const size_t *lens)
{
    wbuf_put_u16(b, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        if (!values[i]) {
            wbuf_put_u32(b, 0xffffffffu);
            continue;
        }
        size_t len = lens ? lens[i] : strlen(values[i]);
        wbuf_put_u32(b, (uint32_t)len);
        wbuf_put_bytes(b, values[i], len);
    }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* out holds exactly one message of type t; returns its body, *len its length. */
static const uint8_t *one_message(const struct wbuf *out, uint8_t t, size_t *len)
{
    assert_true(out->len >= 5);
    assert_int_equal(out->data[0], t);
    assert_int_equal(be32(out->data + 1) + 1, out->len);
    *len = out->len - 5;
    return out->data + 5;
}

static void assert_bytes(const uint8_t *got, size_t got_len, const struct wbuf *want)
{
    assert_int_equal(got_len, want->len);
    assert_memory_equal(got, want->data, want->len);
}

/* A shape as pin_rows_add reads it: two appended columns (the row as JSON, whether it went into
 * the table the secondary's statement names). */
struct fake_shape {
    struct pin_shape sh;
};

/* The columns' hash of a table with the columns names (n of them). */
static uint64_t columns_of(const char *const *names, int n)
{
    struct pin_column cols[8];
    memset(cols, 0, sizeof(cols));
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(cols[i].name, sizeof(cols[i].name), "%s", names[i]);
    }
    struct pin_table t = {.found = true, .ncols = n, .cols = cols};
    return pin_columns_hash(&t);
}

/* A shape of a table with the columns id, v, j. */
static void fake_shape(struct fake_shape *f)
{
    memset(f, 0, sizeof(*f));
    f->sh.refs = 1;
    f->sh.m = 2;
    static const char *const cols[] = {"id", "v", "j"};
    f->sh.columns_hash = columns_of(cols, 3);
}

/* ---- stripping ------------------------------------------------------------------------------ */

static void test_strip_row_description(void **state)
{
    (void)state;
    const char *names[] = {"a", "B c", "id", "ts"};
    struct wbuf body, out, want;
    wbuf_init(&body);
    wbuf_init(&out);
    wbuf_init(&want);
    row_description_body(&body, 4, names);
    assert_int_equal(pin_strip_row_description(body.data, body.len, 2, false, &out), 0);
    size_t len;
    const uint8_t *got = one_message(&out, PqMsg_RowDescription, &len);
    row_description_body(&want, 2, names);
    assert_bytes(got, len, &want);

    /* m = 0: the same RowDescription */
    wbuf_reset(&out);
    assert_int_equal(pin_strip_row_description(body.data, body.len, 0, true, &out), 0);
    got = one_message(&out, PqMsg_RowDescription, &len);
    assert_bytes(got, len, &body);

    /* k = 0: NoData for a Describe, nothing at all for an Execute's reply */
    wbuf_reset(&out);
    assert_int_equal(pin_strip_row_description(body.data, body.len, 4, true, &out), 0);
    const uint8_t nodata[] = {PqMsg_NoData, 0, 0, 0, 4};
    assert_int_equal(out.len, sizeof(nodata));
    assert_memory_equal(out.data, nodata, sizeof(nodata));
    wbuf_reset(&out);
    assert_int_equal(pin_strip_row_description(body.data, body.len, 4, false, &out), 0);
    assert_int_equal(out.len, 0);

    /* malformed: fewer columns than pgdual appended, no count, a cut field */
    assert_int_equal(pin_strip_row_description(body.data, body.len, 5, false, &out), PIN_EPROTO);
    assert_int_equal(pin_strip_row_description(body.data, 1, 0, false, &out), PIN_EPROTO);
    assert_int_equal(pin_strip_row_description(body.data, 0, 0, false, &out), PIN_EPROTO);
    assert_int_equal(pin_strip_row_description(body.data, 2 + 2 + 18 + 5, 2, false, &out),
                     PIN_EPROTO);
    const uint8_t noterm[] = {0, 2, 'a', 'b', 'c'};
    assert_int_equal(pin_strip_row_description(noterm, sizeof(noterm), 1, false, &out), PIN_EPROTO);
    assert_int_equal(out.len, 0);
    wbuf_free(&body);
    wbuf_free(&out);
    wbuf_free(&want);
}

static void test_strip_data_row(void **state)
{
    (void)state;
    const char *values[] = {"1", NULL, "", "it's", "x\0y"};
    const size_t lens[] = {1, 0, 0, 4, 3};
    struct wbuf body, out, want;
    wbuf_init(&body);
    wbuf_init(&out);
    wbuf_init(&want);
    data_row_body(&body, 5, values, lens);
    for (int m = 0; m < 5; m++) {
        wbuf_reset(&out);
        wbuf_reset(&want);
        assert_int_equal(pin_strip_data_row(body.data, body.len, m, &out), 0);
        size_t len;
        const uint8_t *got = one_message(&out, PqMsg_DataRow, &len);
        data_row_body(&want, 5 - m, values, lens);
        assert_bytes(got, len, &want);
    }
    /* every value pgdual's: the client asked for no rows, so none is relayed */
    wbuf_reset(&out);
    assert_int_equal(pin_strip_data_row(body.data, body.len, 5, &out), 0);
    assert_int_equal(out.len, 0);
    /* malformed */
    assert_int_equal(pin_strip_data_row(body.data, body.len, 6, &out), PIN_EPROTO);
    assert_int_equal(pin_strip_data_row(body.data, 1, 0, &out), PIN_EPROTO);
    assert_int_equal(pin_strip_data_row(body.data, 2 + 4, 1, &out), PIN_EPROTO);
    const uint8_t huge[] = {0, 2, 0xff, 0xff, 0xff, 0xfe, 'x', 0, 0, 0, 0};
    assert_int_equal(pin_strip_data_row(huge, sizeof(huge), 1, &out), PIN_EPROTO);
    assert_int_equal(out.len, 0);
    wbuf_free(&body);
    wbuf_free(&out);
    wbuf_free(&want);
}

/* ---- the rows as JSON ----------------------------------------------------------------------- */

static void test_rows_json(void **state)
{
    (void)state;
    struct fake_shape f;
    fake_shape(&f);
    struct wbuf rows, body;
    wbuf_init(&rows);
    wbuf_init(&body);
    pin_rows_close(&rows);
    assert_int_equal(rows.len, 2);
    assert_memory_equal(rows.data, "[]", 2);
    wbuf_reset(&rows);

    /* a client column first, then pgdual's: the server's JSON object, kept as it is */
    const char *r1[] = {"client", "{\"id\":7,\"v\":\"it's \\\"q\\\"\",\"j\":{\"a\": [1, null]}}",
                        "t"};
    data_row_body(&body, 3, r1, NULL);
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), 0);
    const char *r2[] = {"{\"id\":8,\"v\":null,\"j\":null}", "t"};
    wbuf_reset(&body);
    data_row_body(&body, 2, r2, NULL); /* no client column */
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), 0);
    /* a row from another table than the name finds now (one made since): nothing kept */
    size_t before = rows.len;
    const char *r3[] = {"{\"id\":9,\"v\":null,\"j\":null}", "f"};
    wbuf_reset(&body);
    data_row_body(&body, 2, r3, NULL);
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_EOTHER);
    const char *r4[] = {"{\"id\":9,\"v\":null,\"j\":null}", NULL};
    wbuf_reset(&body);
    data_row_body(&body, 2, r4, NULL); /* NULL: the name finds no table now */
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_EOTHER);
    /* a row of the table after another session's ALTER TABLE: a column more, or one less */
    const char *r5[] = {"{\"id\":9,\"v\":null,\"j\":null,\"ts\":\"2026-01-01T00:00:00\"}", "t"};
    wbuf_reset(&body);
    data_row_body(&body, 2, r5, NULL);
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_ESTALE);
    const char *r6[] = {"{\"id\":9,\"j\":null}", "t"};
    wbuf_reset(&body);
    data_row_body(&body, 2, r6, NULL);
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_ESTALE);
    const char *r7[] = {"{\"id\":9,\"j\":null,\"v\":null}", "t"}; /* another order */
    wbuf_reset(&body);
    data_row_body(&body, 2, r7, NULL);
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_ESTALE);
    assert_int_equal(rows.len, before);
    pin_rows_close(&rows);
    const char *want = "[{\"id\":7,\"v\":\"it's \\\"q\\\"\",\"j\":{\"a\": [1, null]}},"
                       "{\"id\":8,\"v\":null,\"j\":null}]";
    assert_int_equal(rows.len, strlen(want));
    assert_memory_equal(rows.data, want, rows.len);
    wbuf_free(&body);
    wbuf_free(&rows);
}

/* A table id, j json, b jsonb, a int[], v text: what its JSON cannot carry travels beside each
 * row, read from the row's text (record_out's, as PostgreSQL 15 prints it). */
static void test_rows_extras(void **state)
{
    (void)state;
    static const char *const cols[] = {"id", "j", "b", "a", "v"};
    struct pin_extra extras[] = {{.field = 1, .kind = PIN_VALUE_JSON, .name = "j"},
                                 {.field = 2, .kind = PIN_VALUE_JSONB, .name = "b"},
                                 {.field = 3, .kind = PIN_VALUE_ARRAY, .name = "a"}};
    struct pin_shape sh = {.refs = 1, .m = 3, .nfields = 5, .nextras = 3, .extras = extras};
    sh.columns_hash = columns_of(cols, 5);
    struct wbuf rows, body;
    wbuf_init(&rows);
    wbuf_init(&body);
    /* JSON nulls (json, jsonb): the row's JSON says null for them as for an SQL NULL */
    const char *r1[] = {"client", "{\"id\":1,\"j\":null,\"b\":null,\"a\":[1,2],\"v\":\"x\"}", "t",
                        "(1,null,null,\"{1,2}\",x)"};
    data_row_body(&body, 4, r1, NULL);
    assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), 0);
    /* SQL NULLs, and an empty string: nothing beside the row */
    const char *r2[] = {"{\"id\":2,\"j\":null,\"b\":null,\"a\":null,\"v\":\"\"}", "t",
                        "(2,,,,\"\")"};
    wbuf_reset(&body);
    data_row_body(&body, 3, r2, NULL);
    assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), 0);
    /* json's own spacing (a newline) and quotes, a jsonb string "null", an empty array */
    const char *r3[] = {
        "{\"id\":3,\"j\":{ \"a\" :\n\"x\\\"y\" },\"b\":\"null\",\"a\":[],\"v\":null}", "t",
        "(3,\"{ \"\"a\"\" :\n\"\"x\\\\\"\"y\"\" }\",\"\"\"null\"\"\",{},)"};
    wbuf_reset(&body);
    data_row_body(&body, 3, r3, NULL);
    assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), 0);
    /* 's': the table's column types changed since the shape was made */
    size_t before = rows.len;
    const char *r4[] = {"{\"id\":4,\"j\":1,\"b\":[],\"a\":[5],\"v\":null}", "s", "(4,1,[],{5},)"};
    wbuf_reset(&body);
    data_row_body(&body, 3, r4, NULL);
    assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), PIN_EPROTO); /* no types */
    char kinds[] = "pjbap";
    sh.kinds = kinds;
    assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), PIN_ESTALE);
    sh.kinds = NULL;
    /* an array with lower bounds other than 1, quoted or not, one or two dimensions: not pinned */
    const char *bounded[] = {"(5,,,\"[0:1]={1,2}\",)", "(5,,,[0:0]={1},)",
                             "(5,,,\"[-2:-1][7:7]={{5},{6}}\",)"};
    for (size_t i = 0; i < sizeof(bounded) / sizeof(*bounded); i++) {
        const char *r[] = {"{\"id\":5,\"j\":null,\"b\":null,\"a\":[1],\"v\":null}", "t",
                           bounded[i]};
        wbuf_reset(&body);
        data_row_body(&body, 3, r, NULL);
        assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), PIN_EBOUNDS);
        assert_int_equal(rows.len, before);
    }
    /* a text that only looks like bounds is an array's elements ('{"[0:1]=x"}') */
    const char *r6[] = {"{\"id\":6,\"j\":null,\"b\":null,\"a\":[\"[0:1]=x\"],\"v\":null}", "t",
                        "(6,,,\"{\"\"[0:1]=x\"\"}\",)"};
    wbuf_reset(&body);
    data_row_body(&body, 3, r6, NULL);
    assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), 0);
    /* malformed texts: a field too few or too many, a quote not closed, no text at all; nothing
     * is kept of them */
    before = rows.len;
    const char *bad[] = {"(5,,,)", "(5,,,,,)", "(5,\"x,,,)", "5,,,,", "(5,\"x\"y,,,)", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        const char *r[] = {"{\"id\":5,\"j\":null,\"b\":null,\"a\":null,\"v\":null}", "t", bad[i]};
        wbuf_reset(&body);
        data_row_body(&body, 3, r, NULL);
        assert_int_equal(pin_rows_add(&rows, &sh, body.data, body.len), PIN_EPROTO);
        assert_int_equal(rows.len, before);
    }
    pin_rows_close(&rows);
    const char *want =
        "[[{\"id\":1,\"j\":null,\"b\":null,\"a\":[1,2],\"v\":\"x\"},{\"j\":\"null\",\"b\":\"null\"}"
        "],"
        "[{\"id\":2,\"j\":null,\"b\":null,\"a\":null,\"v\":\"\"},{}],"
        "[{\"id\":3,\"j\":{ \"a\" :\n\"x\\\"y\" },\"b\":\"null\",\"a\":[],\"v\":null},"
        "{\"j\":\"{ \\\"a\\\" :\\u000a\\\"x\\\\\\\"y\\\" }\",\"b\":\"\\\"null\\\"\"}],"
        "[{\"id\":6,\"j\":null,\"b\":null,\"a\":[\"[0:1]=x\"],\"v\":null},{}]]";
    assert_int_equal(rows.len, strlen(want));
    assert_memory_equal(rows.data, want, rows.len);
    wbuf_free(&body);
    wbuf_free(&rows);
}

/* A WITH query's row read back from pgdual's table: [JSON, its text] for a shape with json/jsonb
 * columns (a JSON null there is not pinned; an SQL NULL is), the JSON alone otherwise. */
static void test_rows_readback(void **state)
{
    (void)state;
    struct pin_extra jcols[] = {{.field = 1, .kind = PIN_VALUE_JSON, .name = "j"},
                                {.field = 2, .kind = PIN_VALUE_JSONB, .name = "b"}};
    struct pin_shape sh = {.refs = 1, .m = 2, .nfields = 4, .njson_cols = 2, .json_cols = jcols};
    struct {
        const char *r;
        int rc;
        bool json_null;
    } cases[] = {
        {"[{\"id\":1,\"j\":null,\"b\":{},\"v\":\"x\"}, \"(1,,{},x)\"]", 0, false},
        {"[{\"id\":1,\"j\":null,\"b\":null,\"v\":null}, \"(1,null,,)\"]", 0, true},
        {"[{\"id\":1,\"j\":null,\"b\":null,\"v\":null}, \"(1,,null,)\"]", 0, true},
        /* json's own spacing around null: record_out quotes it */
        {"[{\"id\":1,\"j\": null ,\"b\":null,\"v\":null}, \"(1,\\\" null \\\",,)\"]", 0, true},
        /* a jsonb string "null", a text column holding null: not a JSON null */
        {"[{\"id\":1,\"j\":[],\"b\":\"null\",\"v\":\"null\"}, "
         "\"(1,[],\\\"\\\"\\\"null\\\"\\\"\\\",null)\"]",
         0, false},
        /* a json scalar, or json text with space around it: new would not keep its text; a
         * jsonb scalar is kept (its normal form) */
        {"[{\"id\":1,\"j\":1,\"b\":null,\"v\":null}, \"(1,1,,)\"]", 0, true},
        {"[{\"id\":1,\"j\":\"a\",\"b\":null,\"v\":null}, \"(1,\\\"\\\"\\\"a\\\"\\\"\\\",,)\"]", 0,
         true},
        {"[{\"id\":1,\"j\": {} ,\"b\":null,\"v\":null}, \"(1,\\\" {} \\\",,)\"]", 0, true},
        {"[{\"id\":1,\"j\":null,\"b\":1,\"v\":null}, \"(1,,1,)\"]", 0, false},
        /* control characters escaped by escape_json */
        {"[{\"id\":1,\"j\":{},\"b\":null,\"v\":\"a\\nb\"}, \"(1,{},,\\\"a\\u000ab\\\")\"]", 0,
         false},
        /* malformed: no text, a text of another width, an escape pgdual does not read */
        {"{\"id\":1,\"j\":null,\"b\":null,\"v\":null}", PIN_EPROTO, false},
        {"[{\"id\":1}, \"(1,,)\"]", PIN_EPROTO, false},
        {"[{\"id\":1}, \"(1,\\u00e9,,)\"]", PIN_EPROTO, false},
        {"[{\"id\":1}, \"(1,,,)\"", PIN_EPROTO, false},
        {"[{\"id\":1} \"(1,,,)\"]", PIN_EPROTO, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const uint8_t *row = NULL;
        size_t row_len = 0;
        bool json_null = !cases[i].json_null;
        print_message("%s\n", cases[i].r);
        assert_int_equal(pin_values_readback(&sh, (const uint8_t *)cases[i].r, strlen(cases[i].r),
                                             &row, &row_len, &json_null),
                         cases[i].rc);
        if (cases[i].rc == 0) {
            assert_int_equal(json_null, cases[i].json_null);
            assert_int_equal(row[0], '{');
            assert_int_equal(row[row_len - 1], '}');
        }
    }
    /* no json/jsonb column: the JSON alone, as it is */
    struct pin_shape plain = {.refs = 1, .m = 2};
    const char *r = "{\"id\":1}";
    const uint8_t *row = NULL;
    size_t row_len = 0;
    bool json_null = true;
    assert_int_equal(
        pin_values_readback(&plain, (const uint8_t *)r, strlen(r), &row, &row_len, &json_null), 0);
    assert_false(json_null);
    assert_ptr_equal(row, (const uint8_t *)r);
    assert_int_equal(row_len, strlen(r));
}

/* Keys as the server's to_json writes them: escaped names; values nested, with strings holding
 * braces, commas, colons and quotes. */
static void test_json_keys(void **state)
{
    (void)state;
    static const char *const names[] = {"id", "a\"b", "c\\d", "e\nf", "g\x01", "h"};
    uint64_t want = columns_of(names, 6);
    const char *json =
        "{\"id\":1,\"a\\\"b\":\"x},{\\\"y\\\":\",\"c\\\\d\":{\"k\": [1, {\"z\":\"]\"}]},"
        "\"e\\nf\":[[],{}],\"g\\u0001\":null,\"h\":-1.5e3}";
    uint64_t got = 0;
    assert_int_equal(pin_json_keys_hash((const uint8_t *)json, strlen(json), &got), 0);
    assert_true(got == want);
    /* the same names in another order, one fewer: another hash */
    static const char *const fewer[] = {"id", "a\"b", "c\\d", "e\nf", "g\x01"};
    assert_false(columns_of(fewer, 5) == want);
    static const char *const swapped[] = {"a\"b", "id", "c\\d", "e\nf", "g\x01", "h"};
    assert_false(columns_of(swapped, 6) == want);
    /* the empty object; malformed texts */
    assert_int_equal(pin_json_keys_hash((const uint8_t *)"{}", 2, &got), 0);
    static const char *const none[] = {NULL};
    assert_true(got == columns_of(none, 0));
    const char *bad[] = {"[1]", "{\"a\" 1}", "{\"a\":1", "{\"a\":\"x}", "{a:1}", "{\"a\":1}x", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(pin_json_keys_hash((const uint8_t *)bad[i], strlen(bad[i]), &got),
                         PIN_EPROTO);
    }
}

static void test_rows_malformed(void **state)
{
    (void)state;
    struct fake_shape f;
    fake_shape(&f);
    struct wbuf rows, body;
    wbuf_init(&rows);
    wbuf_init(&body);
    const char *none[] = {NULL, "t"};
    data_row_body(&body, 2, none, NULL); /* a NULL where the row's JSON belongs */
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_EPROTO);
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, 1), PIN_EPROTO);
    const char *notobj[] = {"c", "[1]", "t"};
    wbuf_reset(&body);
    data_row_body(&body, 3, notobj, NULL); /* not an object */
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_EPROTO);
    const char *notbool[] = {"c", "{\"a\":1}", "true"};
    wbuf_reset(&body);
    data_row_body(&body, 3, notbool, NULL); /* not a boolean's text */
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_EPROTO);
    const char *one[] = {"{\"a\":1}"};
    wbuf_reset(&body);
    data_row_body(&body, 1, one, NULL); /* fewer values than pgdual's columns */
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len), PIN_EPROTO);
    assert_int_equal(rows.len, 0);
    const char *two[] = {"c", "{\"a\":1}", "t"};
    wbuf_reset(&body);
    data_row_body(&body, 3, two, NULL);
    /* cut inside the client's column, then inside pgdual's value */
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, 2 + 4), PIN_EPROTO);
    assert_int_equal(pin_rows_add(&rows, &f.sh, body.data, body.len - 1), PIN_EPROTO);
    wbuf_free(&body);
    wbuf_free(&rows);
}

/* ---- the secondary: a Query ----------------------------------------------------------------- */

static struct pin_shape *upd_shape, *del_shape;

/* public.t (id pk, ts): the UPDATE ... SET ts and the DELETE of pin.c's shapes, built from a
 * plan and a hand-made table so the heads and tails are the real ones. */
static int setup_shapes(void **state)
{
    (void)state;
    struct pin_table t = {0};
    const char *rows[2][8] = {{"public.t", "", "id", "f", "t", NULL, "t", "f"},
                              {"public.t", "", "ts", "f", "f", "now()", "f", "f"}};
    for (int i = 0; i < 2; i++) {
        struct wbuf b;
        wbuf_init(&b);
        const char *const *v = rows[i];
        wbuf_put_u16(&b, 12);
        for (int k = 0; k < 12; k++) {
            /* no trigger makes up values or writes; a table (relkind r), no view query */
            const char *f = k < 8 ? v[k] : k < 10 ? "0" : k == 10 ? "r" : NULL;
            wbuf_put_u32(&b, f ? (uint32_t)strlen(f) : 0xffffffffu);
            wbuf_put_bytes(&b, f, f ? strlen(f) : 0);
        }
        int rc = pin_table_add_row(&t, b.data, b.len, NULL);
        wbuf_free(&b);
        if (rc != 0) {
            return -1;
        }
    }
    struct pin_plan p;
    if (pin_analyze("UPDATE t SET ts = now(); DELETE FROM t WHERE ctid = '(0,1)'", NULL, &p)) {
        return -1;
    }
    upd_shape = pin_shape_new(&p.stmts[0], &t);
    del_shape = pin_shape_new(&p.stmts[1], &t);
    pin_plan_free(&p);
    pin_table_free(&t);
    return upd_shape && del_shape ? 0 : -1;
}

static int teardown_shapes(void **state)
{
    (void)state;
    pin_shape_unref(upd_shape);
    pin_shape_unref(del_shape);
    return 0;
}

#define UPD_HEAD                                                          \
    "UPDATE \"t\" AS \"pgdual_t\" SET \"ts\" = \"pgdual_v\".\"ts\" FROM " \
    "pg_catalog.json_populate_recordset(NULL::\"t\", "
#define DEL_HEAD                               \
    "DELETE FROM \"t\" AS \"pgdual_t\" USING " \
    "pg_catalog.json_populate_recordset(NULL::\"t\", "
#define KEY_TAIL ") AS \"pgdual_v\" WHERE \"pgdual_t\".\"id\" = \"pgdual_v\".\"id\""

static void rows_of(struct wbuf *b, const char *json)
{
    wbuf_init(b);
    wbuf_put_bytes(b, json, strlen(json));
}

static void test_substitute_query(void **state)
{
    (void)state;
    const char *sql = "SELECT 1; UPDATE t SET ts = now() -- c\n; DELETE FROM t WHERE ctid = "
                      "'(0,1)'; SELECT 'x'";
    struct pin_plan p;
    assert_int_equal(pin_analyze(sql, NULL, &p), 0);
    assert_int_equal(p.n, 4);
    struct wbuf msg, out, r1, r2;
    wbuf_init(&msg);
    wbuf_init(&out);
    wire_put_query(&msg, sql);
    rows_of(&r1, "[{\"id\":\"1\",\"ts\":\"it's ''\"}]");
    rows_of(&r2, "[]");
    struct pin_subst s[2] = {
        {.index = 1,
         .start = p.stmts[1].start,
         .end = p.stmts[1].end,
         .shape = upd_shape,
         .rows = &r1},
        {.index = 2,
         .start = p.stmts[2].start,
         .end = p.stmts[2].end,
         .shape = del_shape,
         .rows = &r2},
    };
    assert_int_equal(pin_substitute_query(msg.data, msg.len, s, 2, &out), 0);
    size_t len;
    const uint8_t *body = one_message(&out, PqMsg_Query, &len);
    const char *want = "SELECT 1;" UPD_HEAD "'[{\"id\":\"1\",\"ts\":\"it''s ''''\"}]'" KEY_TAIL
                       ";" DEL_HEAD "'[]'" KEY_TAIL "; SELECT 'x'";
    assert_int_equal(len, strlen(want) + 1);
    assert_string_equal((const char *)body, want);

    /* the secondary's text has the same four statements */
    struct pin_plan q;
    assert_int_equal(pin_analyze((const char *)body, NULL, &q), 0);
    assert_int_equal(q.n, 4);
    assert_int_equal(q.stmts[1].verb, PIN_VERB_UPDATE);
    assert_int_equal(q.stmts[2].verb, PIN_VERB_DELETE);
    pin_plan_free(&q);

    /* nothing to substitute: the same message */
    wbuf_reset(&out);
    assert_int_equal(pin_substitute_query(msg.data, msg.len, s, 0, &out), 0);
    assert_int_equal(out.len, msg.len);
    assert_memory_equal(out.data, msg.data, msg.len);
    wbuf_free(&r1);
    wbuf_free(&r2);
    wbuf_free(&msg);
    wbuf_free(&out);
    pin_plan_free(&p);
}

static void test_substitute_query_bad(void **state)
{
    (void)state;
    const char *sql = "UPDATE t SET ts = now(); UPDATE t SET ts = now()";
    struct wbuf msg, out, rows;
    wbuf_init(&msg);
    wbuf_init(&out);
    wire_put_query(&msg, sql);
    rows_of(&rows, "[]");
    size_t n = strlen(sql);
    const struct {
        size_t s0, e0, s1, e1;
    } bad[] = {
        {0, 23, 20, 48},    /* overlapping */
        {24, 48, 0, 23},    /* out of order */
        {10, 5, 24, 48},    /* end before start */
        {0, 23, 24, n + 1}, /* past the text */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pin_subst s[2] = {
            {.index = 0, .start = bad[i].s0, .end = bad[i].e0, .shape = upd_shape, .rows = &rows},
            {.index = 1, .start = bad[i].s1, .end = bad[i].e1, .shape = upd_shape, .rows = &rows},
        };
        wbuf_reset(&out);
        assert_int_equal(pin_substitute_query(msg.data, msg.len, s, 2, &out), PIN_ESHAPE);
    }
    struct pin_subst ok = {.start = 0, .end = 23, .shape = upd_shape, .rows = &rows};
    assert_int_equal(pin_substitute_query(msg.data, 5, &ok, 1, &out), PIN_ESHAPE);
    assert_int_equal(pin_substitute_query(msg.data, msg.len - 1, &ok, 1, &out), PIN_ESHAPE);
    msg.data[0] = PqMsg_Parse;
    assert_int_equal(pin_substitute_query(msg.data, msg.len, &ok, 1, &out), PIN_ESHAPE);
    wbuf_free(&rows);
    wbuf_free(&msg);
    wbuf_free(&out);
}

/* ---- the secondary: a batch ----------------------------------------------------------------- */

static void put_msg(struct wbuf *b, uint8_t type, const char *a, const char *c)
{
    size_t at = wbuf_begin_msg(b, type);
    if (type == PqMsg_Parse) {
        wbuf_put_cstr(b, a);
        wbuf_put_cstr(b, c);
        wbuf_put_u16(b, 0);
    } else if (type == PqMsg_Bind) {
        wbuf_put_cstr(b, a);
        wbuf_put_cstr(b, c);
        wbuf_put_u16(b, 0);
        wbuf_put_u16(b, 0);
        wbuf_put_u16(b, 0);
    } else if (type == PqMsg_Execute) {
        wbuf_put_cstr(b, a);
        wbuf_put_u32(b, 0);
    }
    wbuf_end_msg(b, at);
}

/* Parse/Bind/Execute of "UPDATE ..." (unnamed), Parse/Bind/Execute of portal p2, Execute p2 again
 * (a suspended portal), Sync. */
static void client_batch(struct wbuf *b)
{
    wbuf_init(b);
    put_msg(b, PqMsg_Parse, "", "UPDATE t SET ts = now() WHERE id = $1");
    put_msg(b, PqMsg_Bind, "", "");
    put_msg(b, PqMsg_Execute, "", NULL);
    put_msg(b, PqMsg_Parse, "s2", "DELETE FROM t WHERE ctid = '(0,1)'");
    put_msg(b, PqMsg_Bind, "p2", "s2");
    put_msg(b, PqMsg_Execute, "p2", NULL);
    put_msg(b, PqMsg_Execute, "p2", NULL);
    put_msg(b, PqMsg_Sync, NULL, NULL);
}

/* The next message of out at *off: its type, and a reader over its body. */
static uint8_t next_msg(const struct wbuf *out, size_t *off, struct wire_reader *rd)
{
    struct wire_msg m;
    assert_int_equal(wire_next_msg(out->data, out->len, off, &m), 0);
    wire_reader_init(rd, m.body, m.body_len);
    return m.type;
}

/* The five messages that replace one Execute, decoded field by field. */
/* What replaced a pinned Execute: Close of pgdual's portal, Close and Parse of its statement
 * named stmt, Bind with the rows as the json parameter, Execute. */
static void check_replacement(const struct wbuf *out, size_t *off, const char *stmt,
                              const char *sql, const char *rows)
{
    struct wire_reader rd;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(next_msg(out, off, &rd), PqMsg_Close);
        assert_int_equal(wire_u8(&rd), i == 0 ? 'P' : 'S');
        assert_string_equal(wire_cstr(&rd), i == 0 ? "pgdual.pin" : stmt);
        assert_int_equal(wire_remaining(&rd), 0);
    }
    assert_int_equal(next_msg(out, off, &rd), PqMsg_Parse);
    assert_string_equal(wire_cstr(&rd), stmt);
    assert_string_equal(wire_cstr(&rd), sql);
    assert_int_equal(wire_u16(&rd), 1);
    assert_int_equal(wire_u32(&rd), 114); /* json */
    assert_int_equal(wire_remaining(&rd), 0);
    assert_int_equal(next_msg(out, off, &rd), PqMsg_Bind);
    assert_string_equal(wire_cstr(&rd), "pgdual.pin"); /* portal */
    assert_string_equal(wire_cstr(&rd), stmt);         /* statement */
    assert_int_equal(wire_u16(&rd), 1);
    assert_int_equal(wire_u16(&rd), 0); /* text */
    assert_int_equal(wire_u16(&rd), 1);
    assert_int_equal(wire_u32(&rd), strlen(rows));
    const uint8_t *v = wire_bytes(&rd, strlen(rows));
    assert_non_null(v);
    assert_memory_equal(v, rows, strlen(rows)); /* a parameter: quotes not doubled */
    assert_int_equal(wire_u16(&rd), 0);
    assert_int_equal(wire_remaining(&rd), 0);
    assert_false(rd.failed);
    assert_int_equal(next_msg(out, off, &rd), PqMsg_Execute);
    assert_string_equal(wire_cstr(&rd), "pgdual.pin");
    assert_int_equal(wire_u32(&rd), 0);
    assert_int_equal(wire_remaining(&rd), 0);
}

/* The client's message i of in, copied unchanged at *off of out. */
static void check_copied(const struct wbuf *in, int i, const struct wbuf *out, size_t *off)
{
    size_t ioff = 0;
    struct wire_msg m, o;
    for (int k = 0; k <= i; k++) {
        assert_int_equal(wire_next_msg(in->data, in->len, &ioff, &m), 0);
    }
    assert_int_equal(wire_next_msg(out->data, out->len, off, &o), 0);
    assert_int_equal(o.whole_len, m.whole_len);
    assert_memory_equal(o.whole, m.whole, m.whole_len);
}

static void test_substitute_batch(void **state)
{
    (void)state;
    struct wbuf in, out, r0, r2;
    client_batch(&in);
    wbuf_init(&out);
    rows_of(&r0, "[{\"id\":\"1\",\"ts\":\"it's\"}]");
    rows_of(&r2, "[{\"id\":\"9\"}]");
    struct pin_subst s[2] = {
        {.index = 0, .shape = upd_shape, .rows = &r0, .stmt_id = 1, .parse = true},
        {.index = 2, .shape = del_shape, .rows = &r2, .stmt_id = 2, .parse = true}};
    uint32_t extra = 0;
    assert_int_equal(pin_substitute_batch(in.data, in.len, s, 2, &out, &extra), 0);
    assert_int_equal(extra, 8);
    size_t off = 0;
    check_copied(&in, 0, &out, &off); /* Parse */
    check_copied(&in, 1, &out, &off); /* Bind */
    check_replacement(&out, &off, "pgdual.pin.1", UPD_HEAD "$1" KEY_TAIL,
                      "[{\"id\":\"1\",\"ts\":\"it's\"}]");
    check_copied(&in, 3, &out, &off); /* Parse s2 */
    check_copied(&in, 4, &out, &off); /* Bind p2 */
    check_copied(&in, 5, &out, &off); /* Execute p2: Execute number 1 */
    check_replacement(&out, &off, "pgdual.pin.2", DEL_HEAD "$1" KEY_TAIL, "[{\"id\":\"9\"}]");
    check_copied(&in, 7, &out, &off); /* Sync */
    assert_int_equal(off, out.len);

    /* One substitution adds four messages with its Parse, two binding it again. */
    for (int parse = 1; parse >= 0; parse--) {
        wbuf_reset(&out);
        s[1].parse = parse;
        assert_int_equal(pin_substitute_batch(in.data, in.len, &s[1], 1, &out, &extra), 0);
        int count = 0;
        struct wire_msg m;
        for (off = 0; off < out.len; count++) {
            assert_int_equal(wire_next_msg(out.data, out.len, &off, &m), 0);
            assert_true(parse || m.type != PqMsg_Parse || count < 8); /* the client's Parses */
        }
        assert_int_equal(count, 8 + (parse ? 4 : 2));
        assert_int_equal(extra, parse ? 4 : 2);
    }

    /* None: the batch unchanged. */
    wbuf_reset(&out);
    assert_int_equal(pin_substitute_batch(in.data, in.len, s, 0, &out, &extra), 0);
    assert_int_equal(extra, 0);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    wbuf_free(&r0);
    wbuf_free(&r2);
    wbuf_free(&in);
    wbuf_free(&out);
}

static void test_substitute_batch_bad(void **state)
{
    (void)state;
    uint32_t extra = 0;
    struct wbuf in, out, rows;
    client_batch(&in);
    wbuf_init(&out);
    rows_of(&rows, "[]");
    struct pin_subst past = {.index = 3, .shape = upd_shape, .rows = &rows};
    assert_int_equal(pin_substitute_batch(in.data, in.len, &past, 1, &out, &extra), PIN_ESHAPE);
    struct pin_subst unsorted[2] = {{.index = 2, .shape = upd_shape, .rows = &rows},
                                    {.index = 0, .shape = upd_shape, .rows = &rows}};
    wbuf_reset(&out);
    assert_int_equal(pin_substitute_batch(in.data, in.len, unsorted, 2, &out, &extra), PIN_ESHAPE);
    struct pin_subst twice[2] = {{.index = 1, .shape = upd_shape, .rows = &rows},
                                 {.index = 1, .shape = upd_shape, .rows = &rows}};
    wbuf_reset(&out);
    assert_int_equal(pin_substitute_batch(in.data, in.len, twice, 2, &out, &extra), PIN_ESHAPE);
    struct pin_subst first = {.index = 0, .shape = upd_shape, .rows = &rows};
    wbuf_reset(&out);
    assert_int_equal(pin_substitute_batch(in.data, in.len - 1, &first, 1, &out, &extra),
                     PIN_ESHAPE);
    wbuf_reset(&out);
    const uint8_t badlen[] = {PqMsg_Execute, 0, 0, 0, 2};
    assert_int_equal(pin_substitute_batch(badlen, sizeof(badlen), &first, 1, &out, &extra),
                     PIN_ESHAPE);
    wbuf_free(&rows);
    wbuf_free(&in);
    wbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strip_row_description),
        cmocka_unit_test(test_strip_data_row),
        cmocka_unit_test(test_rows_json),
        cmocka_unit_test(test_rows_extras),
        cmocka_unit_test(test_rows_readback),
        cmocka_unit_test(test_json_keys),
        cmocka_unit_test(test_rows_malformed),
        cmocka_unit_test(test_substitute_query),
        cmocka_unit_test(test_substitute_query_bad),
        cmocka_unit_test(test_substitute_batch),
        cmocka_unit_test(test_substitute_batch_bad),
    };
    return cmocka_run_group_tests(tests, setup_shapes, teardown_shapes);
}
