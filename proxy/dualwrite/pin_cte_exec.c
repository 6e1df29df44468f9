/* proxy/dualwrite/pin_cte_exec.c: data-modifying WITH queries on the way to the primary: the pin
 * decision on a statement with pinned WITH queries (a Query's or a Parse's), the Parse the primary
 * alone gets rewritten, and each Execute of its portals (see pin_session.h; the SQL and bytes are
 * protocol/pin_cte.c's and pin_cte_ext.c's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pqproto.h"
#include "proxy/dualwrite/pin_private.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

void pin_cte_pin_free(struct cte_pin *p)
{
    wbuf_free(&p->text);
    pin_tmpl_free(&p->tmpl);
    pin_shape_unref(p->outer);
    memset(p, 0, sizeof(*p));
}

/* Statement index (with data-modifying WITH queries pgdual placed, st->outer) of the plan: each
 * WITH query pinned apart (pin_cte.c, slots from base on), the outer statement as any statement.
 * 1: rewritten (*cp); 2: nothing made up (known); -1: cannot be pinned (*why, table); 0: not for
 * this path (decide()). */
int pin_decide_cte(struct session *s, const char *sql, uint32_t index, uint32_t base,
                   struct cte_pin *cp, const char **why_out, char *table)
{
    struct pin_catalog *c = &s->pin;
    const struct pin_stmt *st = &c->plan.stmts[index];
    if (!st->outer || st->nctes <= 0 || !c->cte_table || c->cte_primary != s->primary ||
        pin_off_reason(s) || st->nctes > PIN_CACHE_MAX / 2) {
        return 0;
    }
    /* An earlier statement of the text may drop pgdual's table (DISCARD TEMP) or change what
     * the lookups said: the statement goes as before (counted when it makes up values). */
    if (pin_plan_catalog_moves(&c->plan, (int)index)) {
        return 0;
    }
    struct pin_shape **shapes = calloc((size_t)st->nctes, sizeof(*shapes));
    if (!shapes) {
        return 0;
    }
    const char *why = NULL;
    table[0] = '\0';
    uint32_t pinned = 0;
    for (int k = 0; !why && k < st->nctes; k++) {
        const struct pin_cte *w = &st->ctes[k];
        const struct pin_table *t = pin_table_known(s, &w->st);
        pin_table_name(table, 2 * PIN_NAME_MAX + 2, w->st.schema, w->st.rel);
        enum pin_need need = pin_decide(&w->st, t, &why);
        if (need == PIN_NEEDED && pin_cte_placeable(st, w, &why)) {
            shapes[k] = pin_shape_new(&w->st, t);
            why = shapes[k] ? NULL : "out of memory pinning it";
            pinned += shapes[k] != NULL;
        }
    }
    const struct pin_stmt *o = st->outer;
    if (!why) {
        const struct pin_table *t = pin_plan_created(&c->plan, (int)index);
        t = t ? t : pin_table_known(s, o);
        pin_table_name(table, 2 * PIN_NAME_MAX + 2, o->schema, o->rel);
        enum pin_need need = o->verb == PIN_VERB_NONE ? PIN_NOT_NEEDED : pin_decide(o, t, &why);
        if (need == PIN_NEEDED) {
            cp->outer = pin_shape_new(o, t);
            why = cp->outer ? NULL : "out of memory pinning it";
        }
    }
    int rc = why ? -1 : pinned == 0 && !cp->outer ? 2 : 1;
    if (rc == 1) {
        wbuf_init(&cp->text);
        if (pin_cte_build(sql, st, shapes, cp->outer, base, &cp->text, &cp->tmpl) < 0) {
            why = "out of memory pinning it";
            rc = -1;
        }
        cp->nslots = pinned;
        cp->rewritten = rc == 1;
    }
    for (int k = 0; k < st->nctes; k++) {
        pin_shape_unref(shapes[k]);
    }
    free(shapes);
    if (rc == -1) {
        pin_cte_pin_free(cp);
        *why_out = why;
    }
    return rc;
}

/* The parameter types a Parse (body after the text, at rd) declares, for sh. */
static bool keep_types(struct pin_shape *sh, struct wire_reader *rd)
{
    uint16_t n = wire_u16(rd);
    sh->cte_types = n ? calloc(n, sizeof(*sh->cte_types)) : NULL;
    for (uint16_t i = 0; sh->cte_types && i < n; i++) {
        sh->cte_types[i] = wire_u32(rd);
    }
    sh->cte_ntypes = sh->cte_types ? n : 0;
    return !rd->failed && (n == 0 || sh->cte_types);
}

/* A Parse of a statement with data-modifying WITH queries: the primary alone gets it rewritten
 * as a Query's (pin_cte.c, slots of the session's own); the secondary keeps the client's text
 * (it never runs it while it is the secondary: each Execute becomes pgdual's statement there,
 * pin_cte_ext.c, and a reconnected secondary gets the client's Parse again). The shape carries
 * the secondary's template. 1: rewritten; 0: nothing to pin, or counted (c->msg_*); -1: not for
 * this path. */
int pin_rewrite_parse_cte(struct session *s, const uint8_t *msg, size_t len)
{
    struct pin_catalog *c = &s->pin;
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    const char *name = wire_cstr(&rd);
    const char *sql = wire_cstr(&rd);
    size_t types_at = rd.off;
    const struct pin_stmt *st = &c->plan.stmts[0];
    struct cte_pin cp = {0};
    const char *why = NULL;
    int rc = rd.failed ? 0 : pin_decide_cte(s, sql, 0, c->next_cte_slot, &cp, &why, c->msg_table);
    if (rc <= 0 || rc == 2) {
        c->msg_unpinned = rc == -1 ? why : NULL;
        c->msg_known = rc == 2;
        return rc == 0 ? -1 : 0;
    }
    if (cp.nslots > (uint32_t)INT32_MAX - c->next_cte_slot) {
        /* Slot numbers are pgdual's table's integer column: the session used them all up. */
        pin_cte_pin_free(&cp);
        c->msg_unpinned = "the session prepared too many data-modifying WITH statements";
        c->msg_known = false;
        return 0;
    }
    struct pin_shape *sh = cp.outer ? pin_shape_ref(cp.outer) : pin_shape_bare(false);
    if (sh && !sh->cte && (sh->cte = calloc(1, sizeof(*sh->cte)))) {
        *sh->cte = cp.tmpl; /* moved */
        memset(&cp.tmpl, 0, sizeof(cp.tmpl));
    }
    bool ok = sh && sh->cte && keep_types(sh, &rd);
    int open = ok ? pin_cte_ext_open_param((const char *)cp.text.data, cp.text.len, sh->cte,
                                           sh->cte_types, sh->cte_ntypes)
                  : 0;
    if (open != 0) {
        /* Each Execute goes verbatim, counted: the secondary's text alone could store the
         * parameter otherwise ('007' as text where the primary took 7). */
        pin_cte_pin_free(&cp);
        pin_shape_unref(sh);
        c->msg_unpinned = open > 0 ? "a parameter left untyped is typed by a pinned WITH write "
                                     "and used outside it"
                          : open == PIN_ENOMEM ? "out of memory pinning it"
                                               : "pgdual cannot read its parameters";
        c->msg_known = false;
        return 0;
    }
    if (ok) {
        sh->cte_base = c->next_cte_slot;
        sh->cte_nslots = cp.nslots;
        sh->cte_primary = s->primary;
        c->next_cte_slot += cp.nslots;
        size_t sql_len = strlen(sql);
        wbuf_reset(&c->out);
        size_t at = wbuf_begin_msg(&c->out, PqMsg_Parse);
        wbuf_put_cstr(&c->out, name);
        wbuf_put_bytes(&c->out, sql, st->start);
        wbuf_put_bytes(&c->out, cp.text.data, cp.text.len);
        wbuf_put_bytes(&c->out, sql + st->end, sql_len - st->end);
        wbuf_put_u8(&c->out, '\0');
        wbuf_put_bytes(&c->out, msg + 5 + types_at, len - 5 - types_at);
        wbuf_end_msg(&c->out, at);
        ok = !c->out.failed && st->end <= sql_len && st->start <= st->end;
    }
    pin_cte_pin_free(&cp);
    if (!ok) {
        pin_shape_unref(sh);
        c->msg_unpinned = "out of memory pinning it";
        c->msg_known = false;
        return 0;
    }
    c->msg_shape = sh;
    c->msg_known = true;
    c->out_primary_only = true;
    if (sh->cte_nslots > 0) { /* its text names pgdual's table */
        c->cte_stmts_on |= (uint8_t)(1u << s->primary);
    }
    return 1;
}

/* Did the unit bind portal (its messages so far)? */
static bool bound_in_unit(const struct unit *u, const char *portal)
{
    size_t off = 0;
    struct wire_msg m;
    while (wire_next_msg(u->bytes.data, u->bytes.len, &off, &m) == 0) {
        const char *p = m.type == PqMsg_Bind ? pin_cte_ext_bind_portal(m.body, m.body_len) : NULL;
        if (p && strcmp(p, portal) == 0) {
            return true;
        }
    }
    return false;
}

/* Why an Execute of a portal of a statement with pinned WITH queries cannot be pinned, or NULL.
 * The rows it records are the statement's slots: a second Execute of it in the unit mixes them
 * up (both go verbatim). */
static const char *cte_execute_why(struct session *s, struct unit *u, const struct stmt_class *cls,
                                   const char *portal, uint32_t max_rows, bool active)
{
    struct pin_catalog *c = &s->pin;
    const char *why = !active        ? "pinning is off now"
                      : cls->pin_off ? "its portal asks for binary results of every column"
                      : max_rows != 0
                          ? "a row limit on a statement with data-modifying WITH queries"
                      /* only a statement recording rows (slots) needs pgdual's table */
                      : cls->pin->cte_nslots > 0 && (!c->cte_table || c->cte_primary != s->primary)
                          ? "pgdual's table for WITH query rows is not there"
                      : !bound_in_unit(u, portal) ? "its portal was bound in an earlier batch"
                                                  : NULL;
    for (int i = 0; u->pin && cls->pin->cte_nslots > 0 && i < u->pin->n; i++) {
        struct pin_step *st = &u->pin->steps[i];
        if (st->shape == cls->pin && !st->describe) {
            st->broken = true;
            why = why ? why : "a data-modifying WITH statement executed twice in one batch";
        }
    }
    return why;
}

/* An Execute of a portal of a statement with pinned WITH queries: the rows the primary records
 * are read back after the unit into the statement's slots (always: none may stay behind in
 * pgdual's table), the outer statement's are kept as any pinned statement's; the secondary runs
 * pgdual's statement with them (pin_reply.c, pin_cte_ext.c). */
void pin_execute_cte(struct session *s, struct unit *u, const struct stmt_class *cls,
                     const char *portal, uint32_t max_rows, bool active)
{
    struct pin_shape *sh = cls->pin;
    uint32_t index = (uint32_t)u->executes;
    if (sh->cte_primary != s->primary) {
        /* Prepared before a primary switch: this primary holds the client's text. */
        pin_note_unpinned(u, "a data-modifying WITH statement prepared before a primary switch",
                          cls->unpinned_table, index);
        return;
    }
    const char *why = cte_execute_why(s, u, cls, portal, max_rows, active);
    uint32_t at = 0;
    struct pin_step *st = pin_add_step(u, sh);
    if (!st || !pin_add_slots(u, sh->cte_nslots, sh->cte_base, &at)) {
        /* its reply then keeps pgdual's column: the session cannot go on */
        pin_note_unpinned(u, "out of memory pinning it", cls->unpinned_table, index);
        return;
    }
    st->index = index;
    st->reply_at = u->step_msgs;
    st->pinned = !why;
    st->slot_at = at;
    u->pin->readback_pending = u->pin->readback_pending || sh->cte_nslots > 0;
    u->pin->rows_unknown = u->pin->rows_unknown || (sh->m > 0 && (sh->client_returning || why));
    if (why) {
        pin_note_unpinned(u, why, cls->unpinned_table, index);
    } else {
        pin_set_known(u->pin, index);
    }
}
