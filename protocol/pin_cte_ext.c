/* protocol/pin_cte_ext.c: data-modifying WITH queries pinned through the extended protocol (see
 * pin.h). The client's Parse goes to both sides as it is; a Bind of it followed by its Execute in
 * the same batch becomes, on the primary, a Bind of pgdual's own statement (the text rewritten as
 * pin_cte.c rewrites a Query's) under the client's portal name; each such Execute becomes, on the
 * secondary, pgdual's statement over the rows read back: the template with each slot as one more
 * parameter ($K+1 ...) of type json, bound with the client's parameters followed by the rows.
 * Pure. */
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include "protocol/pin.h"
#include "protocol/pin_internal.h"
#include "protocol/pqproto.h"

#define JSON_OID  114
#define TEXT_OID  25
#define BYTEA_OID 17

/* ---- the statement --------------------------------------------------------------------------- */

static bool decode_types(struct pin_cte_stmt *cs)
{
    struct wire_reader rd;
    wire_reader_init(&rd, cs->types_msg, cs->types_len);
    uint16_t n = wire_u16(&rd);
    cs->types = n ? calloc(n, sizeof(*cs->types)) : NULL;
    if (n && !cs->types) {
        return false;
    }
    for (uint16_t i = 0; i < n; i++) {
        cs->types[i] = wire_u32(&rd);
    }
    cs->ntypes = n;
    return !rd.failed && rd.off == cs->types_len;
}

struct pin_cte_stmt *pin_cte_stmt_new(const char *sql, struct pin_plan *plan,
                                      struct pin_shape *const *shapes, int n,
                                      struct pin_shape *outer, const uint8_t *types_msg,
                                      size_t types_len)
{
    struct pin_cte_stmt *cs = calloc(1, sizeof(*cs));
    if (!cs) {
        pin_plan_free(plan);
        return NULL;
    }
    cs->refs = 1;
    cs->plan = *plan; /* moved */
    memset(plan, 0, sizeof(*plan));
    cs->sql = strdup(sql);
    cs->shapes = n > 0 ? calloc((size_t)n, sizeof(*cs->shapes)) : NULL;
    cs->types_msg = types_len ? malloc(types_len) : NULL;
    if (!cs->sql || (n > 0 && !cs->shapes) || (types_len && !cs->types_msg)) {
        pin_cte_stmt_unref(cs);
        return NULL;
    }
    cs->nshapes = n;
    for (int k = 0; k < n; k++) {
        cs->shapes[k] = pin_shape_ref(shapes[k]);
        cs->nslots += shapes[k] != NULL;
    }
    cs->outer = pin_shape_ref(outer);
    if (types_len) {
        memcpy(cs->types_msg, types_msg, types_len);
    }
    cs->types_len = types_len;
    if (!decode_types(cs)) {
        pin_cte_stmt_unref(cs);
        return NULL;
    }
    return cs;
}

uint32_t pin_cte_records(const struct pin_cte_stmt *cs)
{
    return cs->nslots > 0 ? cs->nslots : cs->outer ? 1 : 0;
}

struct pin_cte_stmt *pin_cte_stmt_ref(struct pin_cte_stmt *cs)
{
    if (cs) {
        cs->refs++;
    }
    return cs;
}

void pin_cte_stmt_unref(struct pin_cte_stmt *cs)
{
    if (!cs || --cs->refs > 0) {
        return;
    }
    for (int k = 0; k < cs->nshapes; k++) {
        pin_shape_unref(cs->shapes[k]);
    }
    free(cs->shapes);
    pin_shape_unref(cs->outer);
    pin_plan_free(&cs->plan);
    free(cs->sql);
    free(cs->types_msg);
    free(cs->types);
    free(cs);
}

int pin_cte_ext_build(const struct pin_cte_stmt *cs, uint32_t slot_base, uint32_t rec_first,
                      struct wbuf *text, struct pin_tmpl *tmpl)
{
    if (cs->plan.n != 1) {
        return PIN_ESHAPE;
    }
    const struct pin_stmt *st = &cs->plan.stmts[0];
    size_t len = strlen(cs->sql);
    if (!st->outer || st->nctes != cs->nshapes || st->start > st->end || st->end > len) {
        return PIN_ESHAPE;
    }
    wbuf_put_bytes(text, cs->sql, st->start);
    int rc = pin_cte_build(cs->sql, st, cs->shapes, cs->outer, slot_base, rec_first, text, tmpl);
    if (rc < 0) {
        return rc;
    }
    /* the text after the statement (comments, blanks, a ';') kept as it is */
    wbuf_put_bytes(text, cs->sql + st->end, len - st->end);
    wbuf_put_u8(text, '\0');
    if (text->failed) {
        pin_tmpl_free(tmpl);
        return PIN_ENOMEM;
    }
    return 0;
}

/* ---- the client's Bind ----------------------------------------------------------------------- */

/* The client's Bind, as pointers into its body. */
struct bind_view {
    const char *portal, *stmt;
    uint16_t nfmt;
    const uint8_t *fmts;
    uint16_t nparams;
    const uint8_t *params; /* the values (length-prefixed), params_len bytes */
    size_t params_len;
    uint16_t nres;
    const uint8_t *res;
};

static bool bind_read(const uint8_t *body, size_t len, struct bind_view *b)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    b->portal = wire_cstr(&rd);
    b->stmt = wire_cstr(&rd);
    b->nfmt = wire_u16(&rd);
    b->fmts = wire_bytes(&rd, (size_t)b->nfmt * 2);
    b->nparams = wire_u16(&rd);
    size_t at = rd.off;
    for (uint16_t i = 0; i < b->nparams && !rd.failed; i++) {
        uint32_t n = wire_u32(&rd);
        if (n != 0xffffffffu) {
            (void)wire_bytes(&rd, n);
        }
    }
    b->params = body + at;
    b->params_len = rd.failed ? 0 : rd.off - at;
    b->nres = wire_u16(&rd);
    b->res = wire_bytes(&rd, (size_t)b->nres * 2);
    /* formats: none, one for all, or one per parameter */
    return !rd.failed && b->portal && b->stmt && rd.off == len &&
           (b->nfmt <= 1 || b->nfmt == b->nparams);
}

const char *pin_cte_ext_bind_portal(const uint8_t *bind, size_t bind_len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, bind, bind_len);
    return wire_cstr(&rd);
}

static uint16_t param_format(const struct bind_view *b, uint16_t i)
{
    if (b->nfmt == 0) {
        return 0;
    }
    const uint8_t *f = b->fmts + (b->nfmt == 1 ? 0 : (size_t)i * 2);
    return (uint16_t)(f[0] << 8 | f[1]);
}

static void put_close(struct wbuf *b, uint8_t what, const char *name)
{
    size_t at = wbuf_begin_msg(b, PqMsg_Close);
    wbuf_put_u8(b, what);
    wbuf_put_cstr(b, name);
    wbuf_end_msg(b, at);
}

/* ---- the primary ----------------------------------------------------------------------------- */

static long params_scan(const char *text, uint32_t k, uint32_t *counts);

#define INT4_OID 23

int pin_cte_ext_own_parse(struct wbuf *out, struct pin_cte_stmt *cs, const char *name)
{
    if (cs->plan.n != 1) {
        return PIN_ESHAPE;
    }
    const struct pin_stmt *st = &cs->plan.stmts[0];
    size_t len = strlen(cs->sql);
    long high = params_scan(cs->sql, 0, NULL);
    if (high < 0 || !st->outer || st->nctes != cs->nshapes || st->start > st->end ||
        st->end > len) {
        return PIN_ESHAPE;
    }
    uint32_t k = (uint32_t)high > cs->ntypes ? (uint32_t)high : cs->ntypes;
    if (k + 1 > UINT16_MAX) {
        return PIN_ESHAPE;
    }
    struct wbuf text;
    wbuf_init(&text);
    struct pin_tmpl tmpl = {0};
    wbuf_put_bytes(&text, cs->sql, st->start);
    int rc = pin_cte_build_at(cs->sql, st, cs->shapes, cs->outer, 0, 0, k + 1, &text, &tmpl);
    pin_tmpl_free(&tmpl);
    if (rc < 0) {
        wbuf_free(&text);
        return rc;
    }
    wbuf_put_bytes(&text, cs->sql + st->end, len - st->end);
    wbuf_put_u8(&text, '\0');
    size_t at = wbuf_begin_msg(out, PqMsg_Parse);
    wbuf_put_cstr(out, name);
    wbuf_put_bytes(out, text.data, text.len);
    wbuf_put_u16(out, (uint16_t)(k + 1));
    for (uint32_t i = 0; i < k; i++) {
        wbuf_put_u32(out, i < cs->ntypes ? cs->types[i] : 0);
    }
    wbuf_put_u32(out, INT4_OID);
    wbuf_end_msg(out, at);
    bool failed = text.failed;
    wbuf_free(&text);
    cs->own_k = (uint16_t)k;
    return failed || out->failed ? PIN_ENOMEM : 0;
}

void pin_cte_ext_close(struct wbuf *out, const char *name)
{
    put_close(out, 'S', name);
}

int pin_cte_ext_primary(struct wbuf *out, const struct pin_cte_stmt *cs, const char *name,
                        uint32_t rec_first, const uint8_t *bind, size_t bind_len)
{
    struct bind_view b;
    if (!bind_read(bind, bind_len, &b) || b.nparams != cs->own_k) {
        return PIN_ESHAPE;
    }
    int m = cs->outer ? cs->outer->m : 0;
    bool all_text = b.nres == 0 || (b.nres == 1 && b.res[0] == 0 && b.res[1] == 0);
    if (m > 0 && b.nres == 1 && !all_text && cs->outer->client_returning) {
        return PIN_ESHAPE; /* binary for all: pgdual's column would come binary too */
    }
    char rec[16];
    int rec_len = snprintf(rec, sizeof(rec), "%u", rec_first);
    size_t at = wbuf_begin_msg(out, PqMsg_Bind);
    wbuf_put_cstr(out, b.portal);
    wbuf_put_cstr(out, name);
    if (b.nfmt == 0 || (b.nfmt == 1 && param_format(&b, 0) == 0)) {
        wbuf_put_u16(out, b.nfmt); /* text for all, pgdual's number too */
        wbuf_put_bytes(out, b.fmts, (size_t)b.nfmt * 2);
    } else {
        wbuf_put_u16(out, (uint16_t)(b.nparams + 1));
        for (uint16_t i = 0; i < b.nparams; i++) {
            wbuf_put_u16(out, param_format(&b, i));
        }
        wbuf_put_u16(out, 0);
    }
    wbuf_put_u16(out, (uint16_t)(b.nparams + 1));
    wbuf_put_bytes(out, b.params, b.params_len);
    wbuf_put_u32(out, (uint32_t)rec_len);
    wbuf_put_bytes(out, rec, (size_t)rec_len);
    if (m == 0 || all_text) {
        wbuf_put_u16(out, b.nres);
        wbuf_put_bytes(out, b.res, (size_t)b.nres * 2);
    } else if (b.nres == 1) {
        wbuf_put_u16(out, 0); /* the client has no columns: all text */
    } else {
        wbuf_put_u16(out, (uint16_t)(b.nres + m));
        wbuf_put_bytes(out, b.res, (size_t)b.nres * 2);
        for (int i = 0; i < m; i++) {
            wbuf_put_u16(out, 0);
        }
    }
    wbuf_end_msg(out, at);
    return out->failed ? PIN_ENOMEM : 0;
}

/* ---- the secondary --------------------------------------------------------------------------- */

/* The template with its j-th slot as $<k + 1 + j>::json. */
static void put_text(struct wbuf *out, const struct pin_tmpl *t, uint32_t k)
{
    for (int j = 0; j < t->n; j++) {
        char p[32];
        snprintf(p, sizeof(p), "$%u::json", k + 1 + (uint32_t)j);
        pin_put_str(out, t->pieces[j]);
        pin_put_str(out, p);
    }
    pin_put_str(out, t->pieces[t->n]);
}

/* counts[i]: how often the text mentions $<i + 1> (i < k; counts may be NULL). Returns the
 * highest parameter number the text mentions (0: none), -1 when it does not scan. */
static long params_scan(const char *text, uint32_t k, uint32_t *counts)
{
    PgQueryScanResult sr = pg_query_scan(text);
    PgQuery__ScanResult *scan =
        sr.error ? NULL
                 : pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
    pg_query_free_scan_result(sr);
    if (!scan) {
        return -1;
    }
    long max = 0;
    for (size_t i = 0; i < scan->n_tokens; i++) {
        const PgQuery__ScanToken *tk = scan->tokens[i];
        if (tk->token != PG_QUERY__TOKEN__PARAM || tk->start < 0 || tk->end <= tk->start + 1) {
            continue;
        }
        unsigned long n = strtoul(text + tk->start + 1, NULL, 10);
        if (n >= 1 && n <= k && counts) {
            counts[n - 1]++;
        }
        if (n <= UINT16_MAX && (long)n > max) {
            max = (long)n;
        }
    }
    pg_query__scan_result__free_unpacked(scan, NULL);
    return max;
}

int pin_cte_ext_open_param(const char *primary, const struct pin_tmpl *tmpl, const uint32_t *types,
                           uint16_t ntypes)
{
    long k = params_scan(primary, 0, NULL);
    if (k <= 0) {
        return k < 0 ? PIN_ESHAPE : 0;
    }
    struct wbuf text;
    wbuf_init(&text);
    put_text(&text, tmpl, UINT16_MAX); /* pgdual's own parameters past any of the client's */
    char *stext = pin_take_string(&text);
    uint32_t *prim = stext ? calloc((size_t)k * 2, sizeof(*prim)) : NULL;
    int rc = prim ? 0 : PIN_ENOMEM;
    if (prim && (params_scan(primary, (uint32_t)k, prim) < 0 ||
                 params_scan(stext, (uint32_t)k, prim + k) < 0)) {
        rc = PIN_ESHAPE;
    }
    for (long i = 0; rc == 0 && i < k; i++) {
        bool open = i >= ntypes || types[i] == 0;
        /* the secondary's text still uses it, but not everywhere the primary's does */
        rc = open && prim[k + i] > 0 && prim[k + i] != prim[i];
    }
    free(prim);
    free(stext);
    return rc;
}

/* The Parse of pgdual's statement: text, then $1..$k typed as the client declared them (a type
 * left open that the text does not use: text, or bytea for a binary value), then json ones. */
static int put_parse(struct wbuf *out, const struct pin_cte_stmt *cs, const struct pin_tmpl *t,
                     const struct bind_view *b)
{
    uint32_t k = b->nparams;
    struct wbuf text;
    wbuf_init(&text);
    put_text(&text, t, k);
    char *sql = pin_take_string(&text);
    uint32_t *used = sql ? calloc(k + 1, sizeof(*used)) : NULL;
    if (!used || params_scan(sql, k, used) < 0) {
        free(sql);
        free(used);
        return used ? PIN_ESHAPE : PIN_ENOMEM;
    }
    size_t at = wbuf_begin_msg(out, PqMsg_Parse);
    wbuf_put_cstr(out, PIN_CTE_STMT_NAME);
    wbuf_put_cstr(out, sql);
    wbuf_put_u16(out, (uint16_t)(k + (uint32_t)t->n));
    for (uint16_t i = 0; i < k; i++) {
        uint32_t type = i < cs->ntypes ? cs->types[i] : 0;
        if (type == 0 && !used[i]) {
            type = param_format(b, i) == 1 ? BYTEA_OID : TEXT_OID;
        }
        wbuf_put_u32(out, type);
    }
    for (int j = 0; j < t->n; j++) {
        wbuf_put_u32(out, JSON_OID);
    }
    wbuf_end_msg(out, at);
    free(sql);
    free(used);
    return 0;
}

static int put_bind(struct wbuf *out, const struct pin_cte_stmt *cs, const struct pin_tmpl *t,
                    const struct bind_view *b, const struct wbuf *slot_rows, uint32_t nslot_rows,
                    const struct wbuf *outer)
{
    size_t at = wbuf_begin_msg(out, PqMsg_Bind);
    wbuf_put_cstr(out, b->portal); /* the client's portal: its state matches the primary's */
    wbuf_put_cstr(out, PIN_CTE_STMT_NAME);
    if (b->nfmt == 0 || (b->nfmt == 1 && param_format(b, 0) == 0)) {
        wbuf_put_u16(out, 0); /* all text, pgdual's json ones too */
    } else {
        wbuf_put_u16(out, (uint16_t)(b->nparams + t->n));
        for (uint16_t i = 0; i < b->nparams; i++) {
            wbuf_put_u16(out, param_format(b, i));
        }
        for (int j = 0; j < t->n; j++) {
            wbuf_put_u16(out, 0);
        }
    }
    wbuf_put_u16(out, (uint16_t)(b->nparams + t->n));
    wbuf_put_bytes(out, b->params, b->params_len);
    for (int j = 0; j < t->n; j++) {
        uint32_t slot = t->slots[j];
        const struct wbuf *rows = slot == PIN_TMPL_OUTER ? outer
                                  : slot < nslot_rows    ? &slot_rows[slot]
                                                         : NULL;
        if (!rows || rows->len == 0) {
            return PIN_ESHAPE;
        }
        wbuf_put_u32(out, (uint32_t)rows->len);
        wbuf_put_bytes(out, rows->data, rows->len);
    }
    /* A pinned outer statement becomes one that returns nothing: no result formats. */
    uint16_t nres = cs->outer ? 0 : b->nres;
    wbuf_put_u16(out, nres);
    if (nres) {
        wbuf_put_bytes(out, b->res, (size_t)nres * 2);
    }
    wbuf_end_msg(out, at);
    return 0;
}

int pin_cte_ext_execute(struct wbuf *out, const struct pin_cte_stmt *cs,
                        const struct pin_tmpl *tmpl, const uint8_t *bind, size_t bind_len,
                        const struct wbuf *slot_rows, uint32_t nslot_rows, const struct wbuf *outer)
{
    struct bind_view b;
    if (!bind_read(bind, bind_len, &b) || (uint32_t)b.nparams + (uint32_t)tmpl->n > UINT16_MAX) {
        return PIN_ESHAPE;
    }
    /* The client's portal is bound to pgdual's statement here as on the primary, so that an
     * Execute of it in a later batch finds it run to completion on both servers (bound to the
     * client's statement and never run, it would write afresh on the secondary). */
    put_close(out, 'P', b.portal);
    put_close(out, 'S', PIN_CTE_STMT_NAME);
    int rc = put_parse(out, cs, tmpl, &b);
    if (rc == 0) {
        rc = put_bind(out, cs, tmpl, &b, slot_rows, nslot_rows, outer);
    }
    if (rc < 0) {
        return rc;
    }
    size_t at = wbuf_begin_msg(out, PqMsg_Execute);
    wbuf_put_cstr(out, b.portal);
    wbuf_put_u32(out, 0);
    wbuf_end_msg(out, at);
    return out->failed ? PIN_ENOMEM : 0;
}
