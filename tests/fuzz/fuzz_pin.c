/* tests/fuzz/fuzz_pin.c: fuzz target for protocol/pin.c. Input: one flags byte, then SQL up to the
 * first NUL, then arbitrary bytes (the "tail"). The SQL goes through pin_analyze and, for each
 * statement, a catalog built for its target (from real DataRow bodies), pin_decide, pin_shape_new,
 * pin_primary_text, rows made from the tail, pin_rows_add and pin_substitute_query; the tail also
 * goes raw to pin_table_add_row, the strip functions, pin_rows_add and pin_substitute_batch.
 * Checks: documented codes only; statements in order inside the text; the lookup, the primary's
 * text and the secondary's Query all parse, with the same statements as the client's text.
 * Dictionary for libFuzzer: tests/fuzz/pin.dict. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include "protocol/pin.h"
#include "protocol/pqproto.h"
#include "protocol/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_TEXT  (1u << 14)
#define FUZZ_MAX_STMTS 8

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "fuzz_pin: %s:%d: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* Statements in sql as the parser sees them; -1 when it does not parse. */
static int parsed_statements(const char *sql)
{
    PgQuerySplitResult r = pg_query_split_with_parser(sql);
    int n = r.error ? -1 : r.n_stmts;
    pg_query_free_split_result(r);
    return n;
}

static void put_quoted(struct wbuf *b, const char *s)
{
    wbuf_put_u8(b, '"');
    for (; *s; s++) {
        if (*s == '"') {
            wbuf_put_u8(b, '"');
        }
        wbuf_put_u8(b, (uint8_t)*s);
    }
    wbuf_put_u8(b, '"');
}

/* One catalog row for column name of st's target, as the lookup would return it. */
static void add_col(struct pin_table *t, const struct pin_stmt *st, const char *blocked,
                    const char *name, const char *flags, const char *def)
{
    struct wbuf q, b;
    wbuf_init(&q);
    wbuf_init(&b);
    if (st->schema[0]) {
        put_quoted(&q, st->schema);
        wbuf_put_u8(&q, '.');
    }
    put_quoted(&q, st->rel);
    const char *v[8] = {NULL,
                        blocked,
                        name,
                        strchr(flags, 'g') ? "t" : "f",
                        strchr(flags, 'i') ? "t" : "f",
                        def,
                        strchr(flags, 'p') ? "t" : "f",
                        strchr(flags, 'j') ? "t" : "f"};
    wbuf_put_u16(&b, 12);
    for (int i = 0; i < 12; i++) {
        /* then: no trigger makes up values or writes; a table (relkind r), no view query */
        const char *f = i < 8 ? v[i] : i < 10 ? "0" : i == 10 ? "r" : NULL;
        const void *p = i == 0 ? (const void *)q.data : f;
        size_t n = i == 0 ? q.len : f ? strlen(f) : 0;
        wbuf_put_u32(&b, p ? (uint32_t)n : 0xffffffffu);
        wbuf_put_bytes(&b, p, n);
    }
    CHECK(pin_table_add_row(t, b.data, b.len, NULL) == 0);
    wbuf_free(&q);
    wbuf_free(&b);
}

/* A target with a key (flags bit 0), the statement's own columns, a now() default, a generated
 * and a json column; blocked when flags bit 1. */
static void build_table(struct pin_table *t, const struct pin_stmt *st, uint8_t flags)
{
    const char *blocked = flags & 2 ? "triggers" : "";
    add_col(t, st, blocked, "id", flags & 1 ? "p" : "", "nextval('s'::regclass)");
    for (int i = 0; i < st->ncols && i < 4; i++) {
        add_col(t, st, blocked, st->cols[i], flags & 4 ? "j" : "", NULL);
    }
    add_col(t, st, blocked, "c_ts", "", "now()");
    add_col(t, st, blocked, "c_g", "g", "(id * 2)");
    add_col(t, st, blocked, "c_j", "j", NULL);
}

/* t's row as to_json writes it: every column, names escaped as escape_json does (a value each:
 * the keys are what pin_rows_add checks). Owned by the caller. */
static char *row_json(const struct pin_table *t)
{
    struct wbuf j;
    wbuf_init(&j);
    wbuf_put_u8(&j, '{');
    for (int i = 0; i < t->ncols; i++) {
        wbuf_put_bytes(&j, i ? ",\"" : "\"", i ? 2 : 1);
        for (const unsigned char *c = (const unsigned char *)t->cols[i].name; *c; c++) {
            char esc[8];
            int n = 0;
            switch (*c) {
            case '"':
                n = snprintf(esc, sizeof(esc), "\\\"");
                break;
            case '\\':
                n = snprintf(esc, sizeof(esc), "\\\\");
                break;
            case '\b':
                n = snprintf(esc, sizeof(esc), "\\b");
                break;
            case '\f':
                n = snprintf(esc, sizeof(esc), "\\f");
                break;
            case '\n':
                n = snprintf(esc, sizeof(esc), "\\n");
                break;
            case '\r':
                n = snprintf(esc, sizeof(esc), "\\r");
                break;
            case '\t':
                n = snprintf(esc, sizeof(esc), "\\t");
                break;
            default:
                n = *c < 0x20 ? snprintf(esc, sizeof(esc), "\\u%04x", *c)
                              : snprintf(esc, sizeof(esc), "%c", *c);
            }
            wbuf_put_bytes(&j, esc, (size_t)n);
        }
        wbuf_put_bytes(&j, "\":0", 3);
    }
    wbuf_put_bytes(&j, "}", 2); /* with its NUL */
    CHECK(!j.failed);
    return (char *)j.data;
}

/* The lookup is NUL-terminated SQL that parses whatever the names. */
static void check_lookup(const struct pin_stmt *st)
{
    struct wbuf q;
    wbuf_init(&q);
    CHECK(pin_catalog_query(st, &q) == 0);
    CHECK(q.len > 0 && q.data[q.len - 1] == '\0' && strlen((const char *)q.data) + 1 == q.len);
    CHECK(parsed_statements((const char *)q.data) == 1);
    wbuf_free(&q);
}

/* A DataRow body: c client values taken from the tail, then pgdual's: the row as a JSON object
 * (obj: what to_json of the table's row writes) and 't' (it went into the table). */
static void reply_row(struct wbuf *b, int c, const struct pin_shape *sh, const char *obj,
                      const uint8_t **tail, size_t *left)
{
    wbuf_put_u16(b, (uint16_t)(c + sh->m));
    for (int i = 0; i < c + sh->m; i++) {
        if (i >= c) {
            const char *v = i == c + sh->m - 1 ? "t" : obj;
            wbuf_put_u32(b, (uint32_t)strlen(v));
            wbuf_put_bytes(b, v, strlen(v));
            continue;
        }
        size_t n = *left ? (*tail)[0] % 8 : 0;
        *tail += *left ? 1 : 0;
        *left -= *left ? 1 : 0;
        if (n == 7) {
            wbuf_put_u32(b, 0xffffffffu);
            continue;
        }
        n = n < *left ? n : *left;
        wbuf_put_u32(b, (uint32_t)n);
        for (size_t k = 0; k < n; k++) {
            uint8_t ch = (*tail)[k];
            wbuf_put_u8(b, ch);
        }
        *tail += n;
        *left -= n;
    }
}

/* The client's rows for statement i, its reply stripped, the rest kept as JSON into rows. */
static void reply_rows(const struct pin_shape *sh, const char *obj, const uint8_t *tail,
                       size_t left, struct wbuf *rows)
{
    int c = sh->client_returning ? 1 : 0;
    for (int r = 0; r < 3 && left > 0; r++) {
        struct wbuf b, out;
        wbuf_init(&b);
        wbuf_init(&out);
        reply_row(&b, c, sh, obj, &tail, &left);
        CHECK(pin_strip_data_row(b.data, b.len, sh->m, &out) == 0);
        CHECK(c ? out.len > 5 && out.data[0] == PqMsg_DataRow : out.len == 0);
        CHECK(pin_rows_add(rows, sh, b.data, b.len) == 0);
        wbuf_free(&b);
        wbuf_free(&out);
    }
    pin_rows_close(rows);
    CHECK(rows->len >= 2 && rows->data[0] == '[' && rows->data[rows->len - 1] == ']');
}

/* What the primary and the secondary run keep the client's statements. */
static void check_texts(const char *sql, const struct pin_plan *p, struct pin_shape **shapes,
                        char **objs, const uint8_t *tail, size_t left)
{
    int n = parsed_statements(sql);
    struct wbuf prim, msg, out, rows[FUZZ_MAX_STMTS];
    wbuf_init(&prim);
    wbuf_init(&msg);
    wbuf_init(&out);
    CHECK(pin_primary_text(sql, p, shapes, &prim) == 0);
    CHECK(parsed_statements((const char *)prim.data) == n);
    struct pin_subst s[FUZZ_MAX_STMTS];
    size_t ns = 0;
    for (int i = 0; i < p->n && i < FUZZ_MAX_STMTS; i++) {
        wbuf_init(&rows[i]);
        if (shapes[i]) {
            reply_rows(shapes[i], objs[i], tail, left, &rows[i]);
            s[ns++] = (struct pin_subst){(uint32_t)i,
                                         p->stmts[i].start,
                                         p->stmts[i].end,
                                         shapes[i],
                                         &rows[i],
                                         0,
                                         false,
                                         NULL,
                                         NULL,
                                         0,
                                         NULL};
        }
    }
    wire_put_query(&msg, sql);
    CHECK(pin_substitute_query(msg.data, msg.len, s, ns, &out) == 0);
    CHECK(out.len >= 6 && out.data[0] == PqMsg_Query);
    CHECK(parsed_statements((const char *)out.data + 5) == n);
    for (int i = 0; i < p->n && i < FUZZ_MAX_STMTS; i++) {
        wbuf_free(&rows[i]);
    }
    wbuf_free(&prim);
    wbuf_free(&msg);
    wbuf_free(&out);
}

/* Decide and shape every statement, then check the texts. */
static void fuzz_plan(const char *sql, const struct pin_plan *p, uint8_t flags, const uint8_t *tail,
                      size_t left)
{
    struct pin_shape **all = calloc((size_t)p->n + 1, sizeof(*all));
    char **objs = calloc((size_t)p->n + 1, sizeof(*objs)); /* each shape's row as JSON */
    CHECK(all != NULL && objs != NULL);
    size_t prev_end = 0;
    for (int i = 0; i < p->n; i++) {
        const struct pin_stmt *st = &p->stmts[i];
        CHECK(st->start >= prev_end && st->start <= st->end && st->end <= strlen(sql));
        CHECK(st->ncols >= -1 && strlen(st->rel) <= PIN_NAME_MAX);
        prev_end = st->end;
        if (i >= FUZZ_MAX_STMTS) {
            continue;
        }
        const char *why;
        enum pin_need need = pin_decide(st, NULL, &why);
        CHECK((need == PIN_IMPOSSIBLE) == (why != NULL));
        if (st->verb == PIN_VERB_NONE) {
            continue;
        }
        check_lookup(st);
        struct pin_table t = {0};
        build_table(&t, st, (uint8_t)(flags >> (i % 3)));
        need = pin_decide(st, &t, &why);
        CHECK((need == PIN_IMPOSSIBLE) == (why != NULL));
        CHECK(need != PIN_NEEDED || st->verb == PIN_VERB_INSERT || st->verb == PIN_VERB_UPDATE ||
              st->verb == PIN_VERB_DELETE);
        if (need == PIN_NEEDED) {
            all[i] = pin_shape_new(st, &t);
            CHECK(all[i] && all[i]->m > 0 && all[i]->returning[0] == '\n');
            objs[i] = row_json(&t);
        }
        pin_table_free(&t);
    }
    check_texts(sql, p, all, objs, tail, left);
    for (int i = 0; i < p->n; i++) {
        pin_shape_unref(all[i]);
        free(objs[i]);
    }
    free(all);
    free(objs);
}

/* The tail as raw message bodies and as a batch. */
static void fuzz_raw(const uint8_t *tail, size_t left, uint8_t flags)
{
    int m = flags % 4;
    struct wbuf out;
    wbuf_init(&out);
    struct pin_table t = {0};
    int rc = pin_table_add_row(&t, tail, left, NULL);
    CHECK(rc == 0 || rc == PIN_EPROTO);
    pin_table_free(&t);
    rc = pin_strip_row_description(tail, left, m, flags & 4, &out);
    CHECK(rc == 0 || rc == PIN_EPROTO);
    rc = pin_strip_data_row(tail, left, m, &out);
    CHECK(rc == 0 || rc == PIN_EPROTO);
    pin_name keys[3] = {"a", "b\"", "c"};
    struct pin_shape sh = {.refs = 1, .m = 2, .nkeys = 3, .keys = keys};
    wbuf_reset(&out);
    rc = pin_rows_add(&out, &sh, tail, left);
    CHECK(rc == 0 || rc == PIN_EPROTO || rc == PIN_EOTHER);
    CHECK(rc == 0 || out.len == 0);
    /* a batch: Executes numbered (flags >> 4) and (flags >> 4) + 1 pinned */
    struct wbuf rows;
    wbuf_init(&rows);
    pin_rows_close(&rows);
    sh.m = 2;
    char head[] = "DELETE FROM t USING f(", end[] = ") v";
    sh.head = head;
    sh.tail = end;
    /* the first parses its statement, the second binds it again */
    struct pin_subst s[2] = {
        {(uint32_t)(flags >> 4), 0, 0, &sh, &rows, 1, true, NULL, NULL, 0, NULL},
        {(uint32_t)(flags >> 4) + 1, 0, 0, &sh, &rows, 1, false, NULL, NULL, 0, NULL}};
    wbuf_reset(&out);
    uint32_t extra = 0;
    rc = pin_substitute_batch(tail, left, s, 1 + (flags & 1), &out, &extra);
    CHECK(rc == 0 || rc == PIN_ESHAPE);
    if (rc == 0) {
        /* every message copied whole, each pinned Execute turned into five (three when bound
         * again) */
        size_t in = 0, n = 0, off = 0;
        struct wire_msg msg;
        while (off < left && wire_next_msg(tail, left, &off, &msg) == 0) {
            in++;
        }
        for (off = 0; off < out.len; n++) {
            CHECK(wire_next_msg(out.data, out.len, &off, &msg) == 0);
        }
        CHECK(extra == 4 + 2 * (uint32_t)(flags & 1));
        CHECK(n == in + extra);
    }
    wbuf_free(&rows);
    wbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_TEXT) {
        return 0;
    }
    uint8_t flags = data[0];
    const uint8_t *sql_at = data + 1, *nul = memchr(sql_at, 0, size - 1);
    size_t sql_len = nul ? (size_t)(nul - sql_at) : size - 1;
    const uint8_t *tail = nul ? nul + 1 : data + size;
    size_t left = (size_t)(data + size - tail);
    char *sql = malloc(sql_len + 1);
    CHECK(sql != NULL);
    memcpy(sql, sql_at, sql_len);
    sql[sql_len] = '\0';
    struct pin_plan p;
    int rc = pin_analyze(sql, NULL, &p);
    CHECK(rc == 0 || rc == PIN_EPARSE);
    CHECK(rc == 0 || (p.n == 0 && p.stmts == NULL));
    if (rc == 0) {
        CHECK(p.n == parsed_statements(sql));
        fuzz_plan(sql, &p, flags, tail, left);
    }
    pin_plan_free(&p);
    fuzz_raw(tail, left, flags);
    free(sql);
    return 0;
}
