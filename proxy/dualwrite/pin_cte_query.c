/* proxy/dualwrite/pin_cte_query.c: data-modifying WITH queries in a simple Query: what pinning
 * each statement takes (the WITH queries pinned apart, the outer statement as any statement), the
 * slots pgdual's temporary table records their rows under, and the gates that keep pgdual's
 * statements away while a ROLLBACK, ROLLBACK TO or COMMIT may drop that table. The text is
 * protocol/pin_cte.c's; the extended protocol's path is pin_cte_exec.c. See pin_session.h. */
#include <stdlib.h>
#include <string.h>

#include "proxy/dualwrite/pin_private.h"
#include "proxy/session/session.h"

void pin_cte_pin_free(struct cte_pin *p)
{
    wbuf_free(&p->text);
    pin_tmpl_free(&p->tmpl);
    pin_shape_unref(p->outer);
    memset(p, 0, sizeof(*p));
}

/* The unit's slots grow by n (empty JSON arrays being built); *rec: the number pgdual's table
 * records the first of them under. A unit's numbers follow the session's last ones (the read-back
 * drops a row with another number: one a ROLLBACK TO brought back after its read-back). */
bool pin_add_slots(struct session *s, struct unit *u, struct pin_shape *const *shapes, int nshapes,
                   bool mark_only, uint32_t *rec)
{
    uint32_t n = mark_only ? 1 : 0; /* the mark's slot: no row comes for it */
    for (int i = 0; i < nshapes; i++) {
        n += shapes[i] != NULL;
    }
    struct unit_pin *p = pin_unit_pin_of(u);
    if (p && p->nslots == 0) {
        p->rec_base = s->pin.rec_next > (uint32_t)INT32_MAX - 65536 ? 0 : s->pin.rec_next;
    }
    if (p) {
        *rec = p->rec_base + p->nslots;
        s->pin.rec_next = *rec + n;
    }
    if (!p || n == 0) {
        return p != NULL;
    }
    struct wbuf *sl = realloc(p->slots, (size_t)(p->nslots + n) * sizeof(*sl));
    if (sl) {
        p->slots = sl;
    }
    struct pin_shape **sh =
        sl ? realloc(p->slot_shapes, (size_t)(p->nslots + n) * sizeof(*sh)) : NULL;
    if (!sh) {
        return false;
    }
    p->slot_shapes = sh;
    if (mark_only) {
        sh[p->nslots] = NULL;
        wbuf_init(&sl[p->nslots++]);
    }
    for (int i = 0; i < nshapes; i++) {
        if (shapes[i]) {
            sh[p->nslots] = pin_shape_ref(shapes[i]);
            wbuf_init(&sl[p->nslots++]);
        }
    }
    return true;
}

static bool rollback_before(const struct pin_plan *p, uint32_t index)
{
    for (uint32_t j = 0; j < index && j < (uint32_t)p->n; j++) {
        if (p->stmts[j].rolls_back) {
            return true;
        }
    }
    return false;
}

/* Is a statement that ends or undoes a transaction, executed through the extended protocol,
 * not answered yet (this unit's included), while pgdual's table may have been made inside the
 * block (a table made and committed outside one survives any ROLLBACK)? */
bool pin_table_may_go(const struct session *s)
{
    const struct pin_catalog *c = &s->pin;
    return !c->cte_table || c->cte_in_txn || c->lookup_pending;
}

bool pin_undo_in_flight(const struct session *s)
{
    if (!pin_table_may_go(s)) {
        return false;
    }
    for (const struct unit *v = s->mirror.head; v; v = v->next) {
        if (!v->internal && v->undoes && !v->prim_done) {
            return true;
        }
    }
    return false;
}

int pin_decide_cte(struct session *s, struct unit *u, const char *sql, uint32_t index,
                   struct cte_pin *cp)
{
    struct pin_catalog *c = &s->pin;
    const struct pin_stmt *st = &c->plan.stmts[index];
    if (!st->outer || st->nctes <= 0 || !c->cte_table || c->cte_primary != s->primary ||
        pin_off_reason(s) || st->nctes > PIN_CACHE_MAX / 2) {
        return 0;
    }
    /* An earlier statement of the text may drop pgdual's table (DISCARD TEMP; a ROLLBACK TO a
     * savepoint made before pgdual made it), end the transaction its rows belong to (COMMIT,
     * PREPARE TRANSACTION) or change what the lookups said: the statement goes as before
     * (counted when it makes up values). */
    if (pin_plan_catalog_moves(&c->plan, (int)index) || rollback_before(&c->plan, index) ||
        pin_undo_in_flight(s)) {
        return 0;
    }
    struct pin_shape **shapes = calloc((size_t)st->nctes, sizeof(*shapes));
    if (!shapes) {
        return 0;
    }
    const char *why = NULL;
    char table[2 * PIN_NAME_MAX + 2] = "";
    uint32_t pinned = 0;
    for (int k = 0; !why && k < st->nctes; k++) {
        const struct pin_cte *w = &st->ctes[k];
        const struct pin_table *t = pin_table_known(s, &w->st);
        pin_table_name(table, sizeof(table), w->st.schema, w->st.rel);
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
        pin_table_name(table, sizeof(table), o->schema, o->rel);
        enum pin_need need = o->verb == PIN_VERB_NONE ? PIN_NOT_NEEDED : pin_decide(o, t, &why);
        if (need == PIN_NEEDED) {
            cp->outer = pin_shape_new(o, t);
            why = cp->outer ? NULL : "out of memory pinning it";
        }
    }
    int rc = why ? -1 : pinned == 0 && !cp->outer ? 2 : 1;
    if (rc == 1) {
        uint32_t base = u->pin ? u->pin->nslots : 0;
        wbuf_init(&cp->text);
        uint32_t rec = 0;
        if (!pin_add_slots(s, u, shapes, st->nctes, false, &rec) ||
            pin_cte_build(sql, st, shapes, cp->outer, base, rec, &cp->text, &cp->tmpl) < 0) {
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
        pin_note_unpinned(u, why, table, index);
    }
    return rc;
}
