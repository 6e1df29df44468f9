/* proxy/dualwrite/pin_cte_exec.c: data-modifying WITH queries sent through the extended protocol.
 * The client's Parse goes to both sides as it is: nothing of the client's ever depends on pgdual's
 * temporary table. Right behind a client's Parse of a statement S whose WITH writes pin, the
 * primary gets pgdual's own Parse of S's text rewritten as a Query's (pin_cte.c), named
 * PIN_CTE_OWN_PREFIX<n>: both are made at the same moment, so the server resolves their names,
 * reads their literals and analyses them again alike. When a batch holds Bind(P, S) and later
 * Execute(P, 0), and nothing before the Bind may drop or roll back pgdual's table, the primary
 * gets a Bind of P to pgdual's statement in place of the client's. The answers to pgdual's own
 * Parse and Close messages are taken out of the client's reply. The rows are read back after the
 * batch as for a Query, and the secondary runs pgdual's statement over them in place of the
 * Execute (pin_cte_ext.c). Anything in doubt goes verbatim and is counted. See pin_session.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pqproto.h"
#include "proxy/dualwrite/pin_private.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

/* ---- the Parse --------------------------------------------------------------------------------
 */

bool pin_cte_parse(struct session *s, const uint8_t *msg, size_t len)
{
    struct pin_catalog *c = &s->pin;
    const struct pin_stmt *st = &c->plan.stmts[0];
    if (pin_off_reason(s) || st->nctes > PIN_CACHE_MAX / 2) {
        return false;
    }
    if (c->names_clash) {
        c->msg_unpinned = PIN_NAMES_CLASH;
        c->msg_known = false;
        return true; /* verbatim, each Execute counted */
    }
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    (void)wire_cstr(&rd);
    const char *sql = wire_cstr(&rd);
    if (!sql || rd.failed) {
        return false;
    }
    size_t types_at = 5 + rd.off;
    int n = st->nctes; /* st goes with the plan into the statement */
    struct pin_shape **shapes = calloc((size_t)n, sizeof(*shapes));
    if (!shapes) {
        return false;
    }
    const char *why = NULL;
    uint32_t pinned = 0;
    for (int k = 0; !why && k < st->nctes; k++) {
        const struct pin_cte *w = &st->ctes[k];
        const struct pin_table *t = pin_table_known(s, &w->st);
        pin_table_name(c->msg_table, sizeof(c->msg_table), w->st.schema, w->st.rel);
        enum pin_need need = pin_decide(&w->st, t, &why);
        if (need == PIN_NEEDED && pin_cte_placeable(st, w, &why)) {
            shapes[k] = pin_shape_new(&w->st, t);
            why = shapes[k] ? NULL : "out of memory pinning it";
            pinned += shapes[k] != NULL;
        }
    }
    struct pin_shape *outer = NULL;
    const struct pin_stmt *o = st->outer;
    if (!why) {
        const struct pin_table *t = pin_table_known(s, o);
        enum pin_need need = o->verb == PIN_VERB_NONE ? PIN_NOT_NEEDED : pin_decide(o, t, &why);
        if (need != PIN_NOT_NEEDED) {
            pin_table_name(c->msg_table, sizeof(c->msg_table), o->schema, o->rel);
        }
        if (need == PIN_NEEDED) {
            outer = pin_shape_new(o, t);
            why = outer ? NULL : "out of memory pinning it";
        }
    }
    if (!why && (pinned > 0 || outer) && st->rels_failed) {
        /* The secondary's statement is parsed at each Execute: the primary's marks a relation
         * name that finds another relation by then (put_moved_marks). Without the whole list,
         * nothing would see it. */
        why = "a WITH statement naming relations pgdual cannot list (a WITH nested in a "
              "subquery, a three-part name, more than 32)";
    }
    if (!why && (pinned > 0 || outer)) {
        c->msg_cte =
            pin_cte_stmt_new(sql, &c->plan, shapes, n, outer, msg + types_at, len - types_at);
        c->plan_valid = false; /* moved (or freed) */
        why = c->msg_cte ? NULL : "out of memory pinning it";
        if (c->msg_cte) {
            c->msg_cte->sec_epoch = c->cte_sec_epoch;
        }
    }
    for (int k = 0; k < n; k++) {
        pin_shape_unref(shapes[k]); /* the statement took its own references */
    }
    free(shapes);
    pin_shape_unref(outer);
    c->msg_unpinned = why;
    /* Nothing made up: known. With a statement of pgdual's: its Executes decide. */
    c->msg_known = !why && !c->msg_cte;
    return true;
}

/* ---- the Bind, Close and Describe ------------------------------------------------------------ */

/* The unit's latest Bind of portal still in force, or NULL. */
static struct pin_cte_bind *bind_of(struct unit *u, const char *portal)
{
    struct unit_pin *p = u->pin;
    for (int i = p ? p->ncte_binds : 0; i-- > 0;) {
        struct pin_cte_bind *b = &p->cte_binds[i];
        if (!b->gone && strcmp(b->portal, portal) == 0) {
            return b;
        }
    }
    return NULL;
}

/* The portal is bound again or closed: the session's and the unit's notes of it end. */
static void portal_gone(struct session *s, struct unit *u, const char *portal)
{
    struct pin_catalog *c = &s->pin;
    for (struct pin_cte_bind *b; (b = bind_of(u, portal));) {
        b->gone = true;
    }
    for (int i = 0; i < c->nlive; i++) {
        if (strcmp(c->live[i].portal, portal) == 0) {
            free(c->live[i].portal);
            pin_cte_stmt_unref(c->live[i].cs);
            c->live[i--] = c->live[--c->nlive];
        }
    }
}

static const struct pin_cte_live *live_of(const struct pin_catalog *c, const char *portal)
{
    for (int i = 0; i < c->nlive; i++) {
        if (strcmp(c->live[i].portal, portal) == 0) {
            return &c->live[i];
        }
    }
    return NULL;
}

/* Why the primary cannot get pgdual's statement for a Bind of cs now, or NULL. */
static const char *bind_why(struct session *s, const struct unit *u, const struct pin_cte_stmt *cs)
{
    const struct pin_catalog *c = &s->pin;
    if (!pin_active(s)) {
        return pin_off_reason(s) ? pin_off_reason(s) : "pinning is off now";
    }
    if (c->names_clash) {
        return PIN_NAMES_CLASH;
    }
    const char *why = pin_cte_own_why(s, u, cs);
    if (why) {
        return why;
    }
    if (u->catalog_change || u->session_objects || u->txn_end ||
        ((u->commits || u->undoes) && pin_table_may_go(s)) || (u->pin && u->pin->cte_doubt) ||
        pin_undo_in_flight(s)) {
        return "a statement before it in its batch may drop pgdual's table or roll it back";
    }
    if (u->prim_rewritten) {
        return "its batch went on to the primary before its Execute came";
    }
    return NULL;
}

void pin_cte_bind(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    const char *portal = wire_cstr(&rd);
    const char *stmt = wire_cstr(&rd);
    if (!portal || !stmt) {
        return;
    }
    portal_gone(s, u, portal);
    const struct stmt_class *cls =
        stmt_track_find(&s->stmts, u->serial, STMT_SPACE_STATEMENT, stmt);
    bool check = false;
    if (!cls) {
        /* Forgotten after code pgdual could not see into (which may have DEALLOCATEd it through
         * SPI): its class is kept, and the primary checks it is still there (bind_check). */
        cls = stmt_track_kept(&s->stmts, STMT_SPACE_STATEMENT, stmt);
        cls = cls && cls->pin_cte ? cls : NULL;
        check = cls != NULL;
    }
    /* A name pgdual no longer knows that was prepared as a data-modifying WITH statement: counted
     * at its Execute. */
    bool forgotten = !cls && pin_cte_name_at(&s->pin, stmt) >= 0;
    if ((!forgotten && (!cls || !cls->pin_cte)) || !pin_analysis_active(s)) {
        return;
    }
    struct unit_pin *p = pin_unit_pin_of(u);
    struct pin_cte_bind *nb =
        p ? realloc(p->cte_binds, ((size_t)p->ncte_binds + 1) * sizeof(*nb)) : NULL;
    char *name = nb ? strdup(portal) : NULL;
    if (nb) {
        p->cte_binds = nb;
    }
    if (!name) {
        return; /* its Execute finds no note: the portal's class counts it */
    }
    struct pin_cte_bind *b = &p->cte_binds[p->ncte_binds++];
    memset(b, 0, sizeof(*b));
    b->at = u->bytes.len - len; /* the message was just kept */
    b->len = len;
    b->portal = name;
    b->cs = forgotten ? NULL : pin_cte_stmt_ref(cls->pin_cte);
    b->step = u->step_msgs;
    b->step_i = -1;
    b->check = check;
    b->why = forgotten ? "a data-modifying WITH statement pgdual no longer knows (forgotten after "
                         "a statement it could not read)"
                       : bind_why(s, u, cls->pin_cte);
    if (!b->why && !u->defer_fwd && !p->cte_hold) {
        /* Not deferred as a whole (the primary was busy, a Flush): the rest is held from here
         * until its Flush or end, so the primary may get pgdual's statement for this Bind. */
        p->cte_hold = true;
        p->hold_at = b->at;
    }
    wbuf_init(&b->prim);
}

void pin_cte_close(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    uint8_t kind = wire_u8(&rd);
    const char *name = wire_cstr(&rd);
    if (kind == 'P' && name) {
        portal_gone(s, u, name);
    }
}

/* A describe step for the Describe of b's portal at step (its RowDescription has pgdual's
 * column when the outer statement is pinned). */
static void add_describe(struct unit *u, const struct pin_cte_bind *b, uint32_t step)
{
    struct pin_shape *outer = b->cs->outer;
    struct pin_step *st = outer && outer->m > 0 ? pin_add_step(u, outer) : NULL;
    if (st) {
        st->describe = true;
        st->reply_at = step;
        st->cte_bind = (int)(b - u->pin->cte_binds) + 1;
        u->pin->rows_unknown = true; /* the secondary's answer keeps pgdual's columns */
    }
}

void pin_cte_describe(struct session *s, struct unit *u, const char *portal)
{
    struct pin_cte_bind *b = bind_of(u, portal);
    const struct pin_cte_live *l = b ? NULL : live_of(&s->pin, portal);
    if (b && b->sub) {
        add_describe(u, b, u->step_msgs);
    } else if (l && l->cs->outer && l->cs->outer->m > 0) {
        struct pin_step *st = pin_add_step(u, l->cs->outer);
        if (st) {
            st->describe = true;
            st->reply_at = u->step_msgs;
            u->pin->rows_unknown = true;
        }
    }
}

/* ---- the Execute ----------------------------------------------------------------------------- */

/* Describes of b's portal between its Bind and now (step numbers from b->step + 1). */
static void describes_since_bind(struct unit *u, const struct pin_cte_bind *b)
{
    size_t off = b->at + b->len;
    uint32_t step = b->step + 1;
    struct wire_msg m;
    while (wire_next_msg(u->bytes.data, u->bytes.len, &off, &m) == 0) {
        if (m.type == PqMsg_Describe && m.body_len > 1 && m.body[0] == 'P' &&
            strcmp((const char *)m.body + 1, b->portal) == 0) {
            add_describe(u, b, step);
        }
        step += m.type == PqMsg_Parse || m.type == PqMsg_Bind || m.type == PqMsg_Describe ||
                m.type == PqMsg_Execute || m.type == PqMsg_Close;
    }
}

/* The primary gets pgdual's statement for b, whose Execute is Execute number index. NULL, or why
 * it cannot. */
static const char *substitute(struct session *s, struct unit *u, struct pin_cte_bind *b,
                              uint32_t index)
{
    struct unit_pin *p = u->pin;
    uint32_t base = p->nslots, rec = 0;
    struct wbuf text;
    wbuf_init(&text);
    struct pin_tmpl tmpl = {0};
    if (!pin_add_slots(s, u, b->cs->shapes, b->cs->nshapes, b->cs->nslots == 0, &rec)) {
        return "out of memory pinning it";
    }
    if (pin_cte_ext_build(b->cs, base, rec, &text, &tmpl) < 0) {
        wbuf_free(&text);
        return "out of memory pinning it";
    }
    const char *why = NULL;
    int open = pin_cte_ext_open_param((const char *)text.data, &tmpl, b->cs->types, b->cs->ntypes);
    if (open != 0) {
        /* the secondary's text alone could store the parameter otherwise ('007' as text where
         * the primary took 7) */
        why = open > 0 ? "a parameter left untyped is typed by a pinned WITH write and used "
                         "outside it"
                       : "pgdual cannot read its parameters";
    } else if (pin_cte_ext_primary(&b->prim, b->cs, b->cs->own, rec, u->bytes.data + b->at + 5,
                                   b->len - 5) < 0) {
        why = "its portal asks for binary results of every column, or its parameters are not "
              "the statement's";
    }
    wbuf_free(&text);
    struct pin_step *st = NULL;
    if (!why && b->check) {
        /* A Describe of the client's statement ahead of pgdual's Bind: it fails as the client's
         * Bind would were the statement gone (DEALLOCATEd by code pgdual could not see into);
         * its answers are not the client's. */
        struct wire_reader rd;
        wire_reader_init(&rd, u->bytes.data + b->at + 5, b->len - 5);
        (void)wire_cstr(&rd);
        const char *stmt = wire_cstr(&rd);
        struct wbuf d;
        wbuf_init(&d);
        size_t at = wbuf_begin_msg(&d, PqMsg_Describe);
        wbuf_put_u8(&d, 'S');
        wbuf_put_cstr(&d, stmt ? stmt : "");
        wbuf_end_msg(&d, at);
        wbuf_put_bytes(&d, b->prim.data, b->prim.len);
        if (d.failed || !pin_cte_own_add_before(u, PqMsg_ParameterDescription, b->step) ||
            !pin_cte_own_add_before(u, PqMsg_RowDescription, b->step)) {
            wbuf_free(&d);
            why = "out of memory pinning it";
        } else {
            wbuf_free(&b->prim);
            b->prim = d; /* moved */
        }
    }
    if (!why && !(st = pin_add_step(u, b->cs->outer))) {
        why = "out of memory pinning it";
    }
    if (why) {
        pin_tmpl_free(&tmpl);
        wbuf_free(&b->prim);
        return why;
    }
    st->index = index;
    st->reply_at = u->step_msgs;
    st->pinned = true;
    st->tmpl = tmpl; /* moved */
    st->cte_bind = (int)(b - p->cte_binds) + 1;
    b->sub = true;
    b->step_i = (int)(st - p->steps);
    p->readback_pending = p->readback_pending || pin_cte_records(b->cs) > 0;
    p->rows_unknown = p->rows_unknown || (b->cs->outer && b->cs->outer->client_returning);
    pin_set_known(p, index);
    describes_since_bind(u, b);
    return NULL;
}

/* An Execute of a portal the primary holds as pgdual's statement, bound by an earlier batch (or
 * executed again): it records rows nobody reads for it (read back and dropped after this batch)
 * and has pgdual's column when the outer statement is pinned. Counted when why is not NULL. */
static void execute_again(struct unit *u, struct pin_cte_stmt *cs, const char *table,
                          uint32_t index, const char *why)
{
    struct pin_step *st = pin_add_step(u, cs->outer);
    if (!st) {
        pin_note_unpinned(u, "out of memory pinning it", table, index);
        return;
    }
    st->index = index;
    st->reply_at = u->step_msgs;
    u->pin->rows_unknown = true;
    u->pin->readback_pending = u->pin->readback_pending || pin_cte_records(cs) > 0;
    if (why) {
        pin_note_unpinned(u, why, table, index);
    } else {
        pin_set_known(u->pin, index);
    }
}

/* Has b's Bind not reached the primary yet? */
static bool bind_held(const struct unit *u, const struct pin_cte_bind *b)
{
    return u->defer_fwd || (u->pin->cte_hold && b->at >= u->pin->hold_at);
}

bool pin_cte_holding(const struct unit *u, size_t *from)
{
    if (!u->pin || !u->pin->cte_hold) {
        return false;
    }
    *from = u->pin->hold_at;
    return true;
}

bool pin_cte_substituted(const struct unit *u)
{
    if (u->pin && u->pin->nins > 0) {
        return true;
    }
    for (int i = 0; u->pin && i < u->pin->ncte_binds; i++) {
        if (u->pin->cte_binds[i].sub) {
            return true;
        }
    }
    return false;
}

void pin_cte_hold_end(struct unit *u)
{
    if (u->pin) {
        u->pin->cte_hold = false;
    }
}

bool pin_cte_execute(struct session *s, struct unit *u, const struct stmt_class *cls,
                     const char *portal, uint32_t max_rows, bool active)
{
    uint32_t index = (uint32_t)u->executes; /* on_execute counts it after this */
    const char *table = cls ? cls->unpinned_table : "";
    struct pin_cte_bind *b = bind_of(u, portal);
    if (!b) {
        const struct pin_cte_live *l = live_of(&s->pin, portal);
        if (l) {
            /* Run to completion on both servers by the batch that bound it (an Execute without
             * a row limit, or the portal is gone): a no-op on both, nothing to count. */
            execute_again(u, l->cs, table, index, NULL);
            return true;
        }
        if (cls && cls->pin_cte) {
            pin_note_unpinned(u, "its portal was bound in an earlier batch", table, index);
            return true;
        }
        return false;
    }
    if (++b->execs > 1) {
        if (b->sub) {
            /* The first Execute's rows and this one's share slots: neither can be used. */
            u->pin->steps[b->step_i].broken = true;
            execute_again(u, b->cs, table, index,
                          "a portal of a data-modifying WITH statement executed twice");
        } else {
            pin_note_unpinned(u, "a portal of a data-modifying WITH statement executed twice",
                              table, index);
        }
        return true;
    }
    const char *why = b->why     ? b->why
                      : !active  ? "pinning is off now"
                      : max_rows ? "a row limit on a statement with data-modifying WITH queries"
                      : !bind_held(u, b)
                          ? "its batch went on to the primary before its Execute came"
                          : NULL;
    if (!why) {
        why = substitute(s, u, b, index);
    }
    if (why) {
        pin_note_unpinned(u, why, table, index);
    }
    return true;
}

/* ---- the primary's bytes and reply ----------------------------------------------------------- */

bool pin_cte_primary_bytes(struct session *s, const struct unit *u, size_t from, struct wbuf *out)
{
    struct pin_catalog *c = &s->pin;
    const struct unit_pin *p = u->pin;
    bool any = false;
    for (int i = 0; p && i < p->ncte_binds; i++) {
        any = any || (p->cte_binds[i].sub && p->cte_binds[i].at >= from);
    }
    for (int i = 0; p && i < p->nins; i++) {
        any = any || p->ins[i].at > from;
    }
    if (!any) {
        return false;
    }
    wbuf_init(out);
    size_t at = from;
    int bi = 0, ii = 0;
    for (;;) {
        while (bi < p->ncte_binds && (!p->cte_binds[bi].sub || p->cte_binds[bi].at < from)) {
            bi++;
        }
        while (ii < p->nins && p->ins[ii].at <= from) {
            ii++;
        }
        const struct pin_cte_bind *b = bi < p->ncte_binds ? &p->cte_binds[bi] : NULL;
        const struct pin_ins *in = ii < p->nins ? &p->ins[ii] : NULL;
        if (!b && !in) {
            break;
        }
        if (in && (!b || in->at <= b->at)) {
            /* pgdual's messages behind the client's that ends at in->at */
            wbuf_put_bytes(out, u->bytes.data + at, in->at - at);
            wbuf_put_bytes(out, in->bytes.data, in->bytes.len);
            out->failed = out->failed || in->bytes.failed;
            at = in->at;
            ii++;
            continue;
        }
        wbuf_put_bytes(out, u->bytes.data + at, b->at - at);
        wbuf_put_bytes(out, b->prim.data, b->prim.len);
        at = b->at + b->len;
        bi++;
        /* the primary holds the portal as pgdual's until a Bind or Close of it, or the end of
         * the transaction */
        struct pin_cte_live *nl = realloc(c->live, ((size_t)c->nlive + 1) * sizeof(*nl));
        char *name = nl ? strdup(b->portal) : NULL;
        if (nl) {
            c->live = nl;
        }
        if (name) {
            c->live[c->nlive++] = (struct pin_cte_live){name, pin_cte_stmt_ref(b->cs), u->serial};
        }
    }
    wbuf_put_bytes(out, u->bytes.data + at, u->bytes.len - at);
    return true;
}

void pin_cte_txn_idle(struct session *s, uint32_t serial)
{
    struct pin_catalog *c = &s->pin;
    for (int i = 0; i < c->nlive; i++) {
        if (c->live[i].serial <= serial) {
            free(c->live[i].portal);
            pin_cte_stmt_unref(c->live[i].cs);
            c->live[i--] = c->live[--c->nlive];
        }
    }
}

void pin_cte_binds_free(struct unit_pin *p)
{
    for (int i = 0; i < p->ncte_binds; i++) {
        free(p->cte_binds[i].portal);
        pin_cte_stmt_unref(p->cte_binds[i].cs);
        wbuf_free(&p->cte_binds[i].prim);
    }
    free(p->cte_binds);
    p->cte_binds = NULL;
    p->ncte_binds = 0;
    for (int i = 0; i < p->nown; i++) {
        pin_cte_stmt_unref(p->own[i].cs);
    }
    free(p->own);
    p->own = NULL;
    p->nown = 0;
    for (int i = 0; i < p->nins; i++) {
        wbuf_free(&p->ins[i].bytes);
    }
    free(p->ins);
    p->ins = NULL;
    p->nins = 0;
}

void pin_cte_live_free(struct pin_catalog *c)
{
    for (int i = 0; i < c->nlive; i++) {
        free(c->live[i].portal);
        pin_cte_stmt_unref(c->live[i].cs);
    }
    free(c->live);
    c->live = NULL;
    c->nlive = 0;
}

void pin_cte_names_free(struct pin_catalog *c)
{
    for (int i = 0; i < c->ncte_names; i++) {
        free(c->cte_names[i]);
    }
    free(c->cte_names);
    c->cte_names = NULL;
    c->ncte_names = 0;
}
