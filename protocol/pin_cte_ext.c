/* protocol/pin_cte_ext.c: data-modifying WITH queries pinned through the extended protocol (see
 * pin.h). The primary runs the client's prepared statement rewritten as pin_cte.c rewrites a
 * Query; the secondary runs, for each Execute, a statement of pgdual's own: the template with each
 * slot as one more parameter ($K+1 ...) of type json, bound with the client's parameters followed
 * by the rows read back. Pure. */
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

/* used[i]: the text mentions $<i + 1> (i < k). A parameter the text does not use has no type
 * PostgreSQL could infer. false when the text does not scan. */
static bool params_used(const char *text, uint32_t k, bool *used)
{
    PgQueryScanResult sr = pg_query_scan(text);
    PgQuery__ScanResult *scan =
        sr.error ? NULL
                 : pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
    pg_query_free_scan_result(sr);
    if (!scan) {
        return false;
    }
    for (size_t i = 0; i < scan->n_tokens; i++) {
        const PgQuery__ScanToken *tk = scan->tokens[i];
        if (tk->token != PG_QUERY__TOKEN__PARAM || tk->start < 0 || tk->end <= tk->start + 1) {
            continue;
        }
        unsigned long n = strtoul(text + tk->start + 1, NULL, 10);
        if (n >= 1 && n <= k) {
            used[n - 1] = true;
        }
    }
    pg_query__scan_result__free_unpacked(scan, NULL);
    return true;
}

static void put_close(struct wbuf *b, uint8_t what, const char *name)
{
    size_t at = wbuf_begin_msg(b, PqMsg_Close);
    wbuf_put_u8(b, what);
    wbuf_put_cstr(b, name);
    wbuf_end_msg(b, at);
}

/* The Parse of pgdual's statement: text, then $1..$k typed as the client declared them (a type
 * left open that the text does not use: text, or bytea for a binary value), then json ones. */
static int put_parse(struct wbuf *out, const struct pin_shape *sh, const char *stmt,
                     const struct bind_view *b)
{
    const struct pin_tmpl *t = sh->cte;
    uint32_t k = b->nparams;
    struct wbuf text;
    wbuf_init(&text);
    put_text(&text, t, k);
    char *sql = pin_take_string(&text);
    bool *used = sql ? calloc(k + 1, sizeof(*used)) : NULL;
    if (!used || !params_used(sql, k, used)) {
        free(sql);
        free(used);
        return used ? PIN_ESHAPE : PIN_ENOMEM;
    }
    size_t at = wbuf_begin_msg(out, PqMsg_Parse);
    wbuf_put_cstr(out, stmt);
    wbuf_put_cstr(out, sql);
    wbuf_put_u16(out, (uint16_t)(k + (uint32_t)t->n));
    for (uint16_t i = 0; i < k; i++) {
        uint32_t type = i < sh->cte_ntypes ? sh->cte_types[i] : 0;
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

/* The rows of template slot j, or NULL. */
static const struct wbuf *slot_of(const struct pin_shape *sh, int j, const struct wbuf *slot_rows,
                                  const struct wbuf *outer)
{
    uint32_t slot = sh->cte->slots[j];
    if (slot == PIN_TMPL_OUTER) {
        return outer;
    }
    if (slot < sh->cte_base || slot - sh->cte_base >= sh->cte_nslots || !slot_rows) {
        return NULL;
    }
    return &slot_rows[slot - sh->cte_base];
}

static int put_bind(struct wbuf *out, const struct pin_shape *sh, const char *stmt,
                    const struct bind_view *b, const struct wbuf *slot_rows,
                    const struct wbuf *outer)
{
    const struct pin_tmpl *t = sh->cte;
    size_t at = wbuf_begin_msg(out, PqMsg_Bind);
    wbuf_put_cstr(out, PIN_SECONDARY_NAME);
    wbuf_put_cstr(out, stmt);
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
        const struct wbuf *rows = slot_of(sh, j, slot_rows, outer);
        if (!rows || rows->len == 0) {
            return PIN_ESHAPE;
        }
        wbuf_put_u32(out, (uint32_t)rows->len);
        wbuf_put_bytes(out, rows->data, rows->len);
    }
    /* A pinned outer statement becomes one that returns nothing: no result formats. */
    uint16_t nres = sh->m > 0 ? 0 : b->nres;
    wbuf_put_u16(out, nres);
    if (nres) {
        wbuf_put_bytes(out, b->res, (size_t)nres * 2);
    }
    wbuf_end_msg(out, at);
    return 0;
}

int pin_cte_ext_execute(struct wbuf *out, const struct pin_shape *sh, const char *stmt,
                        const uint8_t *bind, size_t bind_len, const struct wbuf *slot_rows,
                        const struct wbuf *outer)
{
    struct bind_view b;
    if (!sh->cte || !bind_read(bind, bind_len, &b) ||
        (uint32_t)b.nparams + (uint32_t)sh->cte->n > UINT16_MAX) {
        return PIN_ESHAPE;
    }
    put_close(out, 'P', PIN_SECONDARY_NAME);
    put_close(out, 'S', stmt);
    int rc = put_parse(out, sh, stmt, &b);
    if (rc == 0) {
        rc = put_bind(out, sh, stmt, &b, slot_rows, outer);
    }
    if (rc < 0) {
        return rc;
    }
    size_t at = wbuf_begin_msg(out, PqMsg_Execute);
    wbuf_put_cstr(out, PIN_SECONDARY_NAME);
    wbuf_put_u32(out, 0);
    wbuf_end_msg(out, at);
    return out->failed ? PIN_ENOMEM : 0;
}
