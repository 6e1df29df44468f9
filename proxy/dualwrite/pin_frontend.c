/* proxy/dualwrite/pin_frontend.c: deterministic writes on the way to the primary: the pin decision
 * per statement (the table knowledge is pin_lookup.c's), and the messages the primary gets
 * instead of the client's (see pin_session.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/pqproto.h"
#include "proxy/dualwrite/pin_private.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

/* ---- the decision and the messages for the primary --------------------------------------------
 */

struct unit_pin *pin_unit_pin_of(struct unit *u)
{
    if (!u->pin) {
        u->pin = calloc(1, sizeof(*u->pin));
        if (u->pin) {
            u->pin->cur = -1;
        }
    }
    return u->pin;
}

void unit_pin_free(struct unit_pin *p)
{
    if (!p) {
        return;
    }
    for (int i = 0; i < p->n; i++) {
        pin_shape_unref(p->steps[i].shape);
        wbuf_free(&p->steps[i].rows);
        pin_tmpl_free(&p->steps[i].tmpl);
    }
    for (uint32_t i = 0; i < p->nslots; i++) {
        wbuf_free(&p->slots[i]);
    }
    free(p->slots);
    for (uint32_t i = 0; p->slot_shapes && i < p->nslots; i++) {
        pin_shape_unref(p->slot_shapes[i]);
    }
    free(p->slot_shapes);
    free(p->steps);
    pin_cte_binds_free(p);
    free(p);
}

void pin_table_name(char *dst, size_t cap, const char *schema, const char *rel)
{
    snprintf(dst, cap, "%s%s%s", schema, schema[0] ? "." : "", rel);
}

/* u goes (partly) verbatim although it makes up values: pin_account takes it out of in_sync once
 * the primary has run it. Out of memory keeping the note: the reason is still known. */
void pin_note_unpinned(struct unit *u, const char *why, const char *table, uint32_t index)
{
    struct unit_pin *p = pin_unit_pin_of(u);
    if (p && !p->unpinned) {
        p->unpinned = why;
        p->unpinned_at = index;
        /* which tables it writes is not known */
        p->owe_all = why == pin_why_trigger_writes || why == pin_why_user_code;
        snprintf(p->unpinned_table, sizeof(p->unpinned_table), "%s", table);
    } else if (!p) {
        u->pin_inactive = true; /* counted as such by pin_account */
    }
}

struct pin_step *pin_add_step(struct unit *u, struct pin_shape *sh)
{
    struct unit_pin *p = pin_unit_pin_of(u);
    if (!p) {
        return NULL;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 4;
        struct pin_step *st = realloc(p->steps, (size_t)cap * sizeof(*st));
        if (!st) {
            return NULL;
        }
        p->steps = st;
        p->cap = cap;
    }
    struct pin_step *st = &p->steps[p->n++];
    memset(st, 0, sizeof(*st));
    wbuf_init(&st->rows);
    st->shape = pin_shape_ref(sh);
    return st;
}

/* Why a statement prepared under name (a SQL EXECUTE of it: index, or a Parse of such an
 * EXECUTE: index UINT32_MAX) is counted, or NULL; *pinned: the primary holds it as parsed with
 * pinning's RETURNING list (a protocol Parse of the name): its shape. A PREPARE of the name earlier
 * in the same Query decides (its effects are recorded after this); else the class the session
 * keeps for the name. A name pgdual does not know (prepared by code it cannot see into, or
 * forgotten after such code) is not counted: its statement is not known to write at all. */
static const char *executed_reason(struct session *s, struct unit *u, const char *name,
                                   uint32_t index, const struct stmt_class **pinned,
                                   const char **table)
{
    struct pin_catalog *c = &s->pin;
    *pinned = NULL;
    *table = "";
    for (uint32_t k = index < (uint32_t)c->plan.n ? index : 0; k-- > 0;) {
        const struct pin_stmt *p = &c->plan.stmts[k];
        if (p->sql_prepare && strcmp(p->prepared, name) == 0) {
            return pin_frontend_prepared_reason(s, k, true);
        }
    }
    const struct stmt_class *cls = stmt_track_kept(&s->stmts, STMT_SPACE_STATEMENT, name);
    if (cls && cls->pin) {
        *pinned = cls;
        return NULL;
    }
    if (cls) {
        *table = cls->unpinned_table;
        return cls->unpinned;
    }
    (void)u;
    return NULL;
}

/* Does the statement the session prepared under name write (or is it unknown to pgdual)? A
 * PREPARE of the name earlier in the same Query (statement index; UINT32_MAX: none) decides. */
static bool execute_may_write(struct session *s, const struct unit *u, const char *name,
                              uint32_t index)
{
    const struct pin_catalog *c = &s->pin;
    for (uint32_t k = index < (uint32_t)c->plan.n ? index : 0; k-- > 0;) {
        const struct pin_stmt *p = &c->plan.stmts[k];
        if (p->sql_prepare && strcmp(p->prepared, name) == 0) {
            return !p->plain_select || p->nested_dml;
        }
    }
    const struct stmt_class *cls =
        stmt_track_find(&s->stmts, u->serial, STMT_SPACE_STATEMENT, name);
    return !cls || (cls->mirrored && !cls->plain_select);
}

/* Why a SQL EXECUTE not pinned is counted for its arguments, or NULL: they call code pgdual
 * cannot see into (EXECUTE p(f())), or make up values the write stores (EXECUTE ins(random()):
 * new would compute its own). */
static const char *execute_args_reason(struct session *s, const struct unit *u,
                                       const struct pin_stmt *st, uint32_t index)
{
    if (st->user_code) {
        return pin_why_user_code;
    }
    if (st->nondeterministic && execute_may_write(s, u, st->executes, index)) {
        return "EXECUTE of a write with arguments the server makes up";
    }
    return NULL;
}

/* A SQL EXECUTE (statement index of the Query): counted when what it runs is; pinned as a
 * protocol Execute is when the name was Parsed with pinning's RETURNING list (the primary
 * returns pgdual's columns for it: its text stays, *as_is). */
static struct pin_shape *decide_execute(struct session *s, struct unit *u,
                                        const struct pin_stmt *st, uint32_t index, bool *known,
                                        bool *as_is)
{
    const struct stmt_class *pinned;
    const char *table;
    const char *why = executed_reason(s, u, st->executes, index, &pinned, &table);
    if (pinned) {
        *as_is = true;
        why = pin_off_reason(s);
        if (!why) {
            *known = true;
            return pin_shape_ref(pinned->pin);
        }
        table = pinned->unpinned_table;
    }
    *known = !why;
    if (why) {
        pin_note_unpinned(u, why, table, index);
    }
    return pinned ? pin_shape_ref(pinned->pin) : NULL; /* off: its columns still stripped */
}

/* Decide statement i of the plan: its shape (a new reference) when it is pinned (or, *as_is,
 * a SQL EXECUTE whose statement already returns pinning's columns). */
static struct pin_shape *decide(struct session *s, struct unit *u, const struct pin_stmt *st,
                                uint32_t index, bool *known, bool *as_is)
{
    const char *why = NULL;
    *as_is = false;
    if (st->executes[0]) {
        struct pin_shape *sh = decide_execute(s, u, st, index, known, as_is);
        /* A pinned one returns what it stored: its arguments' values are in the rows; but code
         * of the user's in them runs again on the secondary. */
        const char *args = execute_args_reason(s, u, st, index);
        if (args && (!sh || args == pin_why_user_code)) {
            pin_note_unpinned(u, args, "", index);
            *known = false;
        }
        return sh;
    }
    /* A table created earlier in the same query is described by its CREATE TABLE; after other
     * statements of it that may change the catalog nothing is known. */
    const struct pin_table *t = pin_plan_created(&s->pin.plan, (int)index);
    if (!t && !pin_plan_catalog_moves(&s->pin.plan, (int)index)) {
        t = pin_table_known(s, st);
    }
    enum pin_need need = pin_decide(st, t, &why);
    *known = need != PIN_IMPOSSIBLE && !st->user_code; /* code of the user's may draw anything */
    if (need == PIN_NOT_NEEDED) {
        return NULL;
    }
    char table[2 * PIN_NAME_MAX + 2];
    pin_table_name(table, sizeof(table), st->schema, st->rel);
    if (need == PIN_NEEDED && pin_off_reason(s)) {
        need = PIN_IMPOSSIBLE;
        why = pin_off_reason(s);
        *known = false;
    }
    struct pin_shape *sh = need == PIN_NEEDED ? pin_shape_new(st, t) : NULL;
    if (need == PIN_NEEDED && !sh) {
        why = "out of memory pinning it";
        *known = false;
    }
    if (!sh) {
        pin_note_unpinned(u, why, table, index);
        struct pin_catalog *c = &s->pin;
        if (st->sql_prepare && why && c->nprepared < PIN_PREPARED_MAX) {
            c->prepared_at[c->nprepared] = index;
            c->prepared_why[c->nprepared++] = why;
        } else if (st->sql_prepare && why) {
            c->prepared_more = why;
        }
    }
    return sh;
}

const char *pin_frontend_prepared_reason(const struct session *s, uint32_t index, bool may_write)
{
    const struct pin_catalog *c = &s->pin;
    if (c->query_unanalysed) {
        return may_write ? "prepared while pgdual could not analyse it" : NULL;
    }
    for (int i = 0; i < c->nprepared; i++) {
        if (c->prepared_at[i] == index) {
            return c->prepared_why[i];
        }
    }
    return c->prepared_more;
}

void pin_set_known(struct unit_pin *p, uint32_t index)
{
    if (p && index < 64) {
        p->known |= 1ull << index;
    }
}

/* sql with each statement's RETURNING list appended (shapes[i], unless as_is[i]) or its text
 * replaced (ctes[i].rewritten), as a Query into out. */
static bool primary_query(const char *sql, const struct pin_plan *plan, struct pin_shape **shapes,
                          const bool *as_is, const struct cte_pin *ctes, struct wbuf *out)
{
    size_t len = strlen(sql), at = 0;
    size_t m = wbuf_begin_msg(out, PqMsg_Query);
    for (int i = 0; i < plan->n; i++) {
        const struct pin_stmt *st = &plan->stmts[i];
        if ((!shapes[i] || as_is[i]) && !ctes[i].rewritten) {
            continue;
        }
        if (st->end < at || st->end > len || st->start < at) {
            return false;
        }
        if (ctes[i].rewritten) {
            wbuf_put_bytes(out, sql + at, st->start - at);
            wbuf_put_bytes(out, ctes[i].text.data, ctes[i].text.len);
        } else {
            wbuf_put_bytes(out, sql + at, st->end - at);
            wbuf_put_bytes(out, shapes[i]->returning, strlen(shapes[i]->returning));
        }
        at = st->end;
    }
    wbuf_put_bytes(out, sql + at, len - at);
    wbuf_put_u8(out, '\0');
    wbuf_end_msg(out, m);
    return !out->failed;
}

/* A Query: RETURNING lists into its text (or, with data-modifying WITH queries, its text
 * rewritten), one step per pinned statement. */
static bool rewrite_query(struct session *s, struct unit *u, const char *sql)
{
    struct pin_catalog *c = &s->pin;
    struct pin_shape **shapes = calloc((size_t)c->plan.n, sizeof(*shapes));
    struct cte_pin *ctes = calloc((size_t)c->plan.n, sizeof(*ctes));
    /* as_is: a SQL EXECUTE of a statement that returns pinning's columns (its text stays);
     * strip_only: ...whose rows cannot go to the secondary (pinning is off now) */
    bool *as_is = calloc((size_t)c->plan.n + 1, 2 * sizeof(bool));
    bool *strip_only = as_is ? as_is + c->plan.n + 1 : NULL;
    bool any = false, ok = shapes != NULL && ctes != NULL && as_is != NULL;
    for (int i = 0; ok && i < c->plan.n; i++) {
        bool known = false;
        int r = pin_decide_cte(s, u, sql, (uint32_t)i, &ctes[i]);
        if (r == 0) {
            shapes[i] = decide(s, u, &c->plan.stmts[i], (uint32_t)i, &known, &as_is[i]);
            strip_only[i] = as_is[i] && !known;
        } else {
            known = r > 0;
        }
        if (known) {
            pin_set_known(pin_unit_pin_of(u), (uint32_t)i);
        }
        any = any || shapes[i] || ctes[i].rewritten;
    }
    wbuf_reset(&c->out);
    if (ok && any) {
        ok = primary_query(sql, &c->plan, shapes, as_is, ctes, &c->out);
        for (int i = 0; ok && i < c->plan.n; i++) {
            if (ctes[i].rewritten) {
                struct pin_step *st = pin_add_step(u, ctes[i].outer);
                if (!st) {
                    ok = false;
                    break;
                }
                st->index = (uint32_t)i;
                st->pinned = true;
                st->start = c->plan.stmts[i].start;
                st->end = c->plan.stmts[i].end;
                st->has_tmpl = true;
                st->tmpl = ctes[i].tmpl; /* moved */
                memset(&ctes[i].tmpl, 0, sizeof(ctes[i].tmpl));
                u->pin->rows_unknown =
                    u->pin->rows_unknown || (ctes[i].outer && ctes[i].outer->client_returning);
                u->pin->readback_pending = u->pin->readback_pending || ctes[i].nslots > 0;
                continue;
            }
            struct pin_step *st = shapes[i] ? pin_add_step(u, shapes[i]) : NULL;
            if (shapes[i] && !st) {
                ok = false;
                break;
            }
            if (st) {
                st->index = (uint32_t)i;
                st->pinned = !strip_only[i];
                st->start = c->plan.stmts[i].start;
                st->end = c->plan.stmts[i].end;
                /* A statement run verbatim returns pgdual's columns on the secondary too. */
                u->pin->rows_unknown =
                    u->pin->rows_unknown || shapes[i]->client_returning || strip_only[i];
            }
        }
        if (ok) {
            u->pin->simple = true;
        }
    }
    for (int i = 0; shapes && ctes && i < c->plan.n; i++) {
        pin_shape_unref(shapes[i]);
        pin_cte_pin_free(&ctes[i]);
    }
    free(shapes);
    free(ctes);
    free(as_is);
    if (!ok && any) {
        /* Nothing rewritten after all: the statements go verbatim, and say so. */
        if (u->pin) {
            for (int i = 0; i < u->pin->n; i++) {
                pin_shape_unref(u->pin->steps[i].shape);
                wbuf_free(&u->pin->steps[i].rows);
                pin_tmpl_free(&u->pin->steps[i].tmpl);
            }
            u->pin->n = 0;
            u->pin->readback_pending = false;
        }
        pin_note_unpinned(u, "out of memory pinning it", "", 0);
    }
    return ok && any;
}

/* A Parse: the statement is pinned or not once; its Executes follow (pin_frontend_execute). */
static bool rewrite_parse(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    struct pin_catalog *c = &s->pin;
    c->msg_shape = NULL;
    c->msg_unpinned = NULL;
    c->msg_known = false;
    c->msg_table[0] = '\0';
    if (c->plan.n != 1) {
        return false; /* the server refuses a Parse of several statements */
    }
    const struct pin_stmt *st = &c->plan.stmts[0];
    if (st->outer && st->nctes > 0 && !u->catalog_change && pin_cte_parse(s, msg, len)) {
        return false; /* the Parse goes as it is: its Binds may get pgdual's statement */
    }
    const char *why = NULL;
    if (st->executes[0]) {
        /* A SQL EXECUTE through Parse/Bind/Execute (PgJDBC sends every statement so): its
         * portals are counted when what the name runs now is counted, or was Parsed with
         * pinning's RETURNING list (the secondary runs it verbatim: its own values). Decided at
         * this Parse: a name prepared again before the Execute is not seen (a known gap). */
        const struct stmt_class *pinned;
        const char *table;
        c->msg_unpinned = executed_reason(s, u, st->executes, UINT32_MAX, &pinned, &table);
        if (pinned) {
            c->msg_unpinned = "a SQL EXECUTE through the extended protocol of a statement pinned "
                              "at its Parse";
            table = pinned->unpinned_table;
        }
        if (!c->msg_unpinned) {
            c->msg_unpinned = execute_args_reason(s, u, st, UINT32_MAX);
            table = "";
        }
        snprintf(c->msg_table, sizeof(c->msg_table), "%s", table);
        c->msg_known = !c->msg_unpinned;
        return false;
    }
    /* An earlier statement of the same batch may have changed the catalog: nothing is known. */
    const struct pin_table *t = u->catalog_change ? NULL : pin_table_known(s, st);
    enum pin_need need = pin_decide(st, t, &why);
    pin_table_name(c->msg_table, sizeof(c->msg_table), st->schema, st->rel);
    if (need == PIN_NEEDED && pin_off_reason(s)) {
        need = PIN_IMPOSSIBLE;
        why = pin_off_reason(s);
    }
    c->msg_known = need != PIN_IMPOSSIBLE && !st->user_code;
    if (need == PIN_NOT_NEEDED) {
        return false;
    }
    if (need == PIN_IMPOSSIBLE) {
        c->msg_unpinned = why;
        return false;
    }
    c->msg_shape = pin_shape_new(st, t);
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    const char *name = wire_cstr(&rd);
    const char *sql = wire_cstr(&rd);
    wbuf_reset(&c->out);
    size_t at = wbuf_begin_msg(&c->out, PqMsg_Parse);
    wbuf_put_cstr(&c->out, name);
    bool ok = c->msg_shape && pin_primary_text(sql, &c->plan, &c->msg_shape, &c->out) == 0;
    wbuf_put_bytes(&c->out, msg + 5 + rd.off, len - 5 - rd.off); /* the parameter types */
    wbuf_end_msg(&c->out, at);
    if (!ok || c->out.failed) {
        pin_shape_unref(c->msg_shape);
        c->msg_shape = NULL;
        c->msg_unpinned = "out of memory pinning it";
        c->msg_known = false;
        return false;
    }
    return true;
}

/* A Bind of a pinned statement: pgdual's columns must come back as text. Result formats given
 * per column get text for them; one format for all (binary) cannot be split without knowing the
 * client's column count, unless the client has none: then the portal is only stripped. */
static bool rewrite_bind(struct session *s, const uint8_t *msg, size_t len)
{
    struct pin_catalog *c = &s->pin;
    c->msg_pin_off = false;
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    (void)wire_cstr(&rd);
    const char *stmt = wire_cstr(&rd);
    const struct stmt_class *cls =
        stmt ? stmt_track_pinned(&s->stmts, STMT_SPACE_STATEMENT, stmt) : NULL;
    if (!cls) {
        return false;
    }
    uint16_t nfmt = wire_u16(&rd);
    (void)wire_bytes(&rd, (size_t)nfmt * 2);
    uint16_t nparams = wire_u16(&rd);
    for (uint16_t i = 0; i < nparams && !rd.failed; i++) {
        uint32_t n = wire_u32(&rd);
        if (n != 0xffffffffu) {
            (void)wire_bytes(&rd, n);
        }
    }
    size_t res_at = rd.off;
    uint16_t nres = wire_u16(&rd);
    const uint8_t *res = wire_bytes(&rd, (size_t)nres * 2);
    if (rd.failed || (nres == 1 && res[0] == 0 && res[1] == 0) || nres == 0) {
        return false; /* all text (or a malformed Bind the primary refuses as it is) */
    }
    int m = cls->pin->m;
    if (nres == 1 && cls->pin->client_returning) {
        c->msg_pin_off = true; /* binary for all: pgdual's columns would come binary */
        return false;
    }
    wbuf_reset(&c->out);
    size_t at = wbuf_begin_msg(&c->out, PqMsg_Bind);
    wbuf_put_bytes(&c->out, msg + 5, res_at);
    if (nres == 1) {
        wbuf_put_u16(&c->out, 0); /* the client has no columns: all text */
    } else {
        wbuf_put_u16(&c->out, (uint16_t)(nres + m));
        wbuf_put_bytes(&c->out, res, (size_t)nres * 2);
        for (int i = 0; i < m; i++) {
            wbuf_put_u16(&c->out, 0);
        }
    }
    wbuf_end_msg(&c->out, at);
    return !c->out.failed;
}

/* A Describe of a pinned statement or portal: its RowDescription loses pgdual's columns. */
static void note_describe(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                          bool cte)
{
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    uint8_t kind = wire_u8(&rd);
    const char *name = wire_cstr(&rd);
    enum stmt_space sp = kind == 'S' ? STMT_SPACE_STATEMENT : STMT_SPACE_PORTAL;
    if (kind == 'P' && name && cte) {
        pin_cte_describe(s, u, name);
    }
    const struct stmt_class *cls = name ? stmt_track_pinned(&s->stmts, sp, name) : NULL;
    struct pin_step *st = cls ? pin_add_step(u, cls->pin) : NULL;
    if (st) {
        st->describe = true;
        st->reply_at = u->step_msgs;
        u->pin->rows_unknown = true; /* the secondary's answer keeps pgdual's columns */
    }
}

/* An Execute of a pinned portal: its rows are kept for the secondary (a row limit is lifted when
 * the client sees no rows anyway); of a portal that makes up values unpinned: noted. */
static bool rewrite_execute(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                            bool active, bool cte)
{
    struct pin_catalog *c = &s->pin;
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    const char *portal = wire_cstr(&rd);
    uint32_t max_rows = wire_u32(&rd);
    /* A portal of a statement parsed with pinning's RETURNING list is always known as such
     * (its answers must lose those columns); for the others what the session knows decides. */
    const struct stmt_class *cls =
        portal && !rd.failed ? stmt_track_kept(&s->stmts, STMT_SPACE_PORTAL, portal) : NULL;
    if (!cls && portal && !rd.failed) {
        cls = stmt_track_find(&s->stmts, u->serial, STMT_SPACE_PORTAL, portal);
    }
    uint32_t index = (uint32_t)u->executes; /* on_execute counts it after this */
    bool handled =
        cte && portal && !rd.failed && pin_cte_execute(s, u, cls, portal, max_rows, active);
    /* A ROLLBACK [TO] or COMMIT cannot drop pgdual's table made and committed outside the block */
    bool undo_only = cls && cls->txn_end && !cls->user_code && !cls->catalog && !cls->effects &&
                     !cls->session_state && !pin_table_may_go(s);
    if (!cls || !(cls->txn_keeps || undo_only ||
                  (cls->dml_only && !cls->user_code && !cls->catalog && !cls->effects &&
                   !cls->commits && !cls->session_state))) {
        u->exec_doubt = true; /* for the session's first WITH statement (below) */
    }
    if (cte && u->exec_doubt) {
        /* It (or an Execute before it) may drop pgdual's table or roll it back: no Bind after
         * it in the batch gets pgdual's statement. A BEGIN, SAVEPOINT or RELEASE cannot (PgJDBC
         * sends BEGIN in the batch of a block's first statement). */
        struct unit_pin *p = pin_analysis_active(s) ? pin_unit_pin_of(u) : NULL;
        if (p) {
            p->cte_doubt = true;
        }
    }
    if (!cls || handled) {
        return false;
    }
    if (!cls->pin) {
        if (cls->pin_known) {
            pin_set_known(pin_unit_pin_of(u), index);
        } else if (cls->unpinned) {
            pin_note_unpinned(u, cls->unpinned, cls->unpinned_table, index);
        } else if (cls->mirrored && cls->nondeterministic) {
            pin_note_unpinned(u, "prepared while pinning was off", cls->unpinned_table, index);
        }
        return false;
    }
    bool off = cls->pin_off || !active || (max_rows != 0 && cls->pin->client_returning);
    struct pin_step *st = pin_add_step(u, cls->pin);
    if (!st) {
        pin_note_unpinned(u, "out of memory pinning it", cls->unpinned_table, index);
        return false; /* its reply is then not stripped: the session cannot go on */
    }
    st->index = index;
    st->reply_at = u->step_msgs;
    st->pinned = !off;
    /* The secondary's statement returns no rows; one run verbatim returns pgdual's columns too. */
    u->pin->rows_unknown = u->pin->rows_unknown || cls->pin->client_returning || off;
    if (off) {
        pin_note_unpinned(u,
                          !active        ? "pinning is off now"
                          : cls->pin_off ? "its portal asks for binary results of every column"
                                         : "a row limit on a statement with RETURNING",
                          cls->unpinned_table, index);
    } else {
        pin_set_known(u->pin, index);
    }
    if (max_rows == 0 || cls->pin->client_returning) {
        return false;
    }
    wbuf_reset(&c->out); /* no rows reach the client either way: run it whole */
    size_t at = wbuf_begin_msg(&c->out, PqMsg_Execute);
    wbuf_put_cstr(&c->out, portal);
    wbuf_put_u32(&c->out, 0);
    wbuf_end_msg(&c->out, at);
    return !c->out.failed;
}

static bool is_step_message(uint8_t type)
{
    return type == PqMsg_Parse || type == PqMsg_Bind || type == PqMsg_Describe ||
           type == PqMsg_Execute || type == PqMsg_Close;
}

/* A client's statement or portal named as pgdual names its own ("pgdual."): pgdual's statements
 * must never replace it (pin_session.h, names_clash). */
static void note_names(struct pin_catalog *c, const uint8_t *msg, size_t len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    if (msg[0] == PqMsg_Close || msg[0] == PqMsg_Describe) {
        (void)wire_u8(&rd);
    }
    const char *name = wire_cstr(&rd);
    const char *stmt = msg[0] == PqMsg_Bind && name ? wire_cstr(&rd) : NULL;
    if (pin_name_clashes(name) || pin_name_clashes(stmt)) {
        c->names_clash = true;
    }
}

bool pin_frontend_rewrite(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                          const struct wbuf **out)
{
    struct pin_catalog *c = &s->pin;
    bool active = pin_active(s), analysis = pin_analysis_active(s);
    bool rw = false;
    if (is_step_message(msg[0]) && !c->names_clash) {
        note_names(c, msg, len);
    }
    bool cte = pin_cte_any(s); /* else no WITH work below (the path without WITH statements) */
    c->out_prim_only = false;
    if ((msg[0] == PqMsg_Query || msg[0] == PqMsg_Parse) && !c->names_clash && len > 5 &&
        memmem(msg + 5, len - 5, "\"pgdual.", 8)) {
        /* SQL PREPARE, EXECUTE, DEALLOCATE, DECLARE, FETCH, MOVE or CLOSE may name pgdual's */
        c->names_clash = true;
    }
    switch (msg[0]) {
    case PqMsg_Query:
        if (cte) {
            (void)pin_cte_own_messages(s, u, msg, len, false); /* it drops the unnamed one */
        }
        c->nprepared = 0;
        c->prepared_more = NULL;
        c->query_unanalysed = !analysis || !c->plan_valid;
        u->pin_inactive = u->pin_inactive || !analysis;
        rw = analysis && c->plan_valid && rewrite_query(s, u, (const char *)msg + 5);
        break;
    case PqMsg_Parse:
        pin_cte_stmt_unref(c->msg_cte);
        c->msg_cte = NULL;
        c->msg_shape = NULL;
        c->msg_unpinned = NULL;
        c->msg_known = false;
        c->msg_table[0] = '\0';
        c->msg_unanalysed = !analysis;
        rw = analysis && c->plan_valid && rewrite_parse(s, u, msg, len);
        if (len > 5 && memchr(msg + 5, '\0', len - 5)) {
            pin_cte_parsed(s, (const char *)msg + 5, c->msg_cte != NULL);
        }
        if ((cte || c->msg_cte) && pin_cte_own_messages(s, u, msg, len, rw)) {
            rw = true; /* the client's Parse, pgdual's behind it: the primary's only */
        }
        break;
    case PqMsg_Bind:
        if (cte) {
            pin_cte_bind(s, u, msg, len);
        }
        rw = rewrite_bind(s, msg, len);
        c->cte_create_tried = false; /* bind_lookup tried for this one */
        break;
    case PqMsg_Close:
        if (cte) {
            pin_cte_close(s, u, msg, len);
            rw = pin_cte_own_messages(s, u, msg, len, false);
        }
        break;
    case PqMsg_Describe:
        note_describe(s, u, msg, len, cte);
        break;
    case PqMsg_Execute:
        rw = rewrite_execute(s, u, msg, len, active, cte);
        break;
    case PqMsg_FunctionCall:
        u->pin_inactive = true; /* a function by OID: pgdual cannot pin what it makes up */
        break;
    default:
        break;
    }
    if (!cte && u->exec_doubt && pin_cte_any(s)) {
        /* The session's first WITH statement: an Execute before it in the batch may drop
         * pgdual's table or roll it back (rewrite_execute). */
        struct unit_pin *p = pin_analysis_active(s) ? pin_unit_pin_of(u) : NULL;
        if (p) {
            p->cte_doubt = true;
        }
    }
    if (is_step_message(msg[0])) {
        u->step_msgs++;
    }
    for (int i = 0; c->plan_valid && i < c->plan.n; i++) {
        if (c->plan.stmts[i].sets_config) {
            pin_catalog_private(c); /* search_path or role may change: not like the others */
        }
    }
    if (msg[0] == PqMsg_Query || msg[0] == PqMsg_Parse) {
        pin_plan_free(&c->plan);
        c->plan_valid = false;
        c->cte_create_tried = false;
        pin_catalog_message_done(c);
    }
    *out = rw ? &c->out : NULL;
    return rw;
}

void pin_frontend_class(struct session *s, struct stmt_class *cls, bool bind)
{
    struct pin_catalog *c = &s->pin;
    if (bind) {
        cls->pin_off = cls->pin_off || c->msg_pin_off;
        c->msg_pin_off = false;
        return;
    }
    cls->pin = c->msg_shape; /* the reference moves to the class (stmt_track_define refs it) */
    cls->pin_cte = c->msg_cte;
    cls->pin_known = c->msg_known;
    cls->unpinned = c->msg_unpinned;
    snprintf(cls->unpinned_table, sizeof(cls->unpinned_table), "%s", c->msg_table);
    /* Prepared while pgdual could not look at what it writes (mirroring off, the secondary away,
     * a DDL or a transaction end still unanswered ahead of it): its defaults, triggers and rules
     * were never looked up, so a write it makes may make up values. Counted at every Execute
     * that reaches the secondary, never pinned (a statement prepared again gets analysed). */
    if (c->msg_unanalysed && !cls->pin && !cls->pin_known && !cls->unpinned && cls->mirrored &&
        !cls->lock_only_read) {
        cls->unpinned = "prepared while pgdual could not analyse it";
    }
    c->msg_unanalysed = false;
}

void pin_frontend_class_done(struct session *s)
{
    pin_shape_unref(s->pin.msg_shape);
    s->pin.msg_shape = NULL;
    pin_cte_stmt_unref(s->pin.msg_cte);
    s->pin.msg_cte = NULL;
}
