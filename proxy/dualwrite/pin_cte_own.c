/* proxy/dualwrite/pin_cte_own.c: the names of the client's data-modifying WITH statements, and
 * pgdual's own statements on the primary that go with them (pin_cte_exec.c): made right behind
 * the client's Parse, closed behind the client's Close or re-Parse of the name, after a SQL
 * DEALLOCATE of it, or once the server they were made on is primary again; their answers are
 * taken out of the client's reply (pin_reply_own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "protocol/pqproto.h"
#include "proxy/dualwrite/pin_private.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

/* ---- the statement names -------------------------------------------------------------------- */

int pin_cte_name_at(const struct pin_catalog *c, const char *name)
{
    for (int i = 0; i < c->ncte_names; i++) {
        if (strcmp(c->cte_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

void pin_cte_parsed(struct session *s, const char *name, bool cte)
{
    struct pin_catalog *c = &s->pin;
    int at = pin_cte_name_at(c, name);
    if (at >= 0 && !cte) {
        free(c->cte_names[at]);
        c->cte_names[at] = c->cte_names[--c->ncte_names];
    } else if (at < 0 && cte && c->ncte_names < PIN_CTE_NAMES_MAX) {
        char **v = realloc(c->cte_names, ((size_t)c->ncte_names + 1) * sizeof(*v));
        char *copy = v ? strdup(name) : NULL;
        if (v) {
            c->cte_names = v;
        }
        if (copy) {
            c->cte_names[c->ncte_names++] = copy;
        }
    }
    if (at < 0 && cte && pin_cte_name_at(c, name) < 0) {
        c->cte_names_lost = true; /* the list is full or out of memory */
    }
}

bool pin_name_clashes(const char *name)
{
    return name && strncmp(name, "pgdual.", 7) == 0;
}

bool pin_cte_any(const struct session *s)
{
    const struct pin_catalog *c = &s->pin;
    return c->ncte_names > 0 || c->nlive > 0 || c->cte_names_lost;
}

void pin_cte_catalog_moved(struct session *s)
{
    s->pin.cte_sec_epoch++;
}

void pin_cte_own_forget(struct session *s)
{
    s->pin.own_gen++;
}

/* ---- pgdual's own statements on the primary ----------------------------------------------------
 */

static bool own_live(const struct pin_cte_stmt *cs)
{
    return cs && cs->own[0] && (cs->own_state == PIN_OWN_SENT || cs->own_state == PIN_OWN_MADE);
}

static void stale_add(struct pin_catalog *c, const char *name, int primary)
{
    for (int i = 0; i < c->nstale; i++) {
        if (strcmp(c->stale[i], name) == 0 && c->stale_primary[i] == primary) {
            return;
        }
    }
    if (c->nstale < PIN_STALE_MAX) {
        c->stale_primary[c->nstale] = primary;
        snprintf(c->stale[c->nstale++], PIN_CTE_OWN_MAX, "%s", name);
    } /* else left on that server until the session ends */
}

/* The class pgdual keeps for the client's statement name: known, or kept across a forget. */
static const struct stmt_class *cte_class(struct session *s, uint32_t serial, const char *name)
{
    const struct stmt_class *cls = stmt_track_find(&s->stmts, serial, STMT_SPACE_STATEMENT, name);
    if (!cls) {
        cls = stmt_track_kept(&s->stmts, STMT_SPACE_STATEMENT, name);
    }
    return cls && cls->pin_cte ? cls : NULL;
}

void pin_cte_own_dropped(struct session *s, uint32_t serial, const char *name)
{
    const struct stmt_class *cls = cte_class(s, serial, name);
    struct pin_cte_stmt *cs = cls ? cls->pin_cte : NULL;
    if (cs && own_live(cs)) {
        cs->own_state = PIN_OWN_LOST;
        stale_add(&s->pin, cs->own, cs->own_primary);
    }
}

static bool own_add(struct unit *u, uint8_t type, struct pin_cte_stmt *cs, const char *name,
                    bool stale_if_skipped)
{
    struct unit_pin *p = pin_unit_pin_of(u);
    struct pin_own *v = p ? realloc(p->own, ((size_t)p->nown + 1) * sizeof(*v)) : NULL;
    if (!v) {
        return false;
    }
    p->own = v;
    struct pin_own *o = &v[p->nown++];
    memset(o, 0, sizeof(*o));
    o->step = u->step_msgs + 1; /* the client's message is step u->step_msgs */
    o->type = type;
    o->cs = pin_cte_stmt_ref(cs);
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->stale_if_skipped = stale_if_skipped;
    return true;
}

/* The answer (type) to a message of pgdual's the primary gets in front of the client's message
 * at step (a Bind's check): kept in reply order among the others. */
bool pin_cte_own_add_before(struct unit *u, uint8_t type, uint32_t step)
{
    struct unit_pin *p = pin_unit_pin_of(u);
    struct pin_own *v = p ? realloc(p->own, ((size_t)p->nown + 1) * sizeof(*v)) : NULL;
    if (!v) {
        return false;
    }
    p->own = v;
    int at = p->nown;
    while (at > p->own_next && v[at - 1].step > step) {
        at--;
    }
    memmove(&v[at + 1], &v[at], (size_t)(p->nown - at) * sizeof(*v));
    p->nown++;
    memset(&v[at], 0, sizeof(v[at]));
    v[at].step = step;
    v[at].type = type;
    return true;
}

/* A number for the names of pgdual's statements in one session: a client that names its own
 * statements "pgdual.cte.<n>" does not meet them (review 12e: 42P05, or a Bind of pgdual's). */
static uint32_t own_token_new(void)
{
    uint32_t t = 0;
    if (getrandom(&t, sizeof(t), GRND_NONBLOCK) != (ssize_t)sizeof(t)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() << 16;
    }
    return t ? t : 1;
}

/* Why pgdual's own statement cannot be made now for a Parse of the client's in u. */
static const char *own_gate(struct session *s, const struct unit *u, const struct pin_cte_stmt *cs)
{
    const struct pin_catalog *c = &s->pin;
    if (!pin_active(s)) {
        return "pinning is off now";
    }
    if (c->names_clash) {
        return PIN_NAMES_CLASH;
    }
    if (pin_cte_records(cs) > 0 && (!c->cte_table || c->cte_primary != s->primary)) {
        return "pgdual's table for WITH query rows is not there";
    }
    if (u->catalog_change || u->session_objects || u->txn_end ||
        ((u->commits || u->undoes) && pin_table_may_go(s)) || (u->pin && u->pin->cte_doubt) ||
        u->prim_rewritten || pin_undo_in_flight(s)) {
        /* pgdual's Parse must never fail where the client's succeeds */
        return "a statement before it in its batch may drop pgdual's table or roll it back";
    }
    return NULL;
}

bool pin_cte_own_messages(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                          bool rewritten)
{
    struct pin_catalog *c = &s->pin;
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    uint8_t kind = msg[0] == PqMsg_Close ? wire_u8(&rd) : 'S';
    const char *name = msg[0] == PqMsg_Query ? "" : wire_cstr(&rd);
    if (!name || kind != 'S') {
        return false;
    }
    /* known, or kept across a forget (code pgdual could not see into) */
    const struct stmt_class *old = cte_class(s, u->serial, name);
    struct pin_cte_stmt *ocs = old && own_live(old->pin_cte) ? old->pin_cte : NULL;
    if (msg[0] == PqMsg_Query || rewritten) {
        /* a Query drops the unnamed statement; a Parse rewritten for both sides cannot carry
         * pgdual's messages: its statement is closed later, and never bound again */
        if (ocs && (msg[0] == PqMsg_Parse || name[0] == '\0')) {
            ocs->own_state = PIN_OWN_LOST;
            stale_add(c, ocs->own, ocs->own_primary);
        }
        return false;
    }
    if (ocs && ocs->own_primary != s->primary) {
        /* made on the server that was primary then (a switch since): closed there once it is
         * primary again */
        ocs->own_state = PIN_OWN_LOST;
        stale_add(c, ocs->own, ocs->own_primary);
        ocs = NULL;
    }
    int here = 0;
    for (int i = 0; i < c->nstale; i++) {
        here += c->stale_primary[i] == s->primary;
    }
    struct pin_cte_stmt *ncs = msg[0] == PqMsg_Parse ? c->msg_cte : NULL;
    if (!ocs && !ncs && here == 0) {
        return false;
    }
    wbuf_reset(&c->out);
    wbuf_put_bytes(&c->out, msg, len);
    bool ok = true;
    if (ocs) {
        /* the client's statement replaced or closed: pgdual's goes with it */
        pin_cte_ext_close(&c->out, ocs->own);
        ok = own_add(u, PqMsg_CloseComplete, ocs, ocs->own,
                     msg[0] == PqMsg_Close || name[0] == '\0');
        if (msg[0] == PqMsg_Close) {
            ocs->own_state = PIN_OWN_LOST;
        }
    }
    int kept = 0;
    for (int i = 0; i < c->nstale; i++) {
        if (c->stale_primary[i] != s->primary) {
            c->stale_primary[kept] = c->stale_primary[i]; /* another server's: not now */
            memmove(c->stale[kept++], c->stale[i], PIN_CTE_OWN_MAX);
            continue;
        }
        if (ok) {
            pin_cte_ext_close(&c->out, c->stale[i]);
            ok = own_add(u, PqMsg_CloseComplete, NULL, c->stale[i], true);
        }
        if (!ok) {
            c->stale_primary[kept] = c->stale_primary[i];
            memmove(c->stale[kept++], c->stale[i], PIN_CTE_OWN_MAX);
        }
    }
    c->nstale = kept;
    if (ok && ncs && !own_gate(s, u, ncs)) {
        char own[PIN_CTE_OWN_MAX];
        if (!c->own_token) {
            c->own_token = own_token_new();
        }
        snprintf(own, sizeof(own), PIN_CTE_OWN_PREFIX "%08x.%u", c->own_token, ++c->own_next_id);
        size_t at = c->out.len;
        if (pin_cte_ext_own_parse(&c->out, ncs, own) == 0 &&
            own_add(u, PqMsg_ParseComplete, ncs, own, false)) {
            memcpy(ncs->own, own, sizeof(own));
            ncs->own_state = PIN_OWN_SENT;
            ncs->own_primary = s->primary;
            ncs->own_serial = u->serial;
            ncs->own_table = pin_cte_records(ncs) > 0 ? c->cte_oid : 0;
            ncs->own_gen = c->own_gen;
        } else {
            c->out.len = at; /* not made: its Binds go verbatim, counted */
            c->out.failed = false;
        }
    }
    c->out_prim_only = ok && !c->out.failed;
    if (c->out_prim_only) {
        u->routable = false; /* pgdual's messages are the primary's: never a read for new */
    }
    return c->out_prim_only;
}

bool pin_cte_insert(struct unit *u, size_t at, const uint8_t *bytes, size_t len)
{
    struct unit_pin *p = pin_unit_pin_of(u);
    struct pin_ins *v = p ? realloc(p->ins, ((size_t)p->nins + 1) * sizeof(*v)) : NULL;
    if (!v) {
        return false;
    }
    p->ins = v;
    struct pin_ins *in = &v[p->nins++];
    in->at = at;
    wbuf_init(&in->bytes);
    wbuf_put_bytes(&in->bytes, bytes, len);
    return !in->bytes.failed;
}

void pin_cte_primary_done(struct session *s, struct unit *u)
{
    struct unit_pin *p = u->pin;
    for (int i = p ? p->own_next : 0; p && i < p->nown; i++) {
        struct pin_own *o = &p->own[i];
        if (o->type == PqMsg_ParseComplete) {
            if (o->cs && o->cs->own_state == PIN_OWN_SENT && strcmp(o->cs->own, o->name) == 0) {
                o->cs->own_state = PIN_OWN_LOST; /* skipped: the client's Parse failed */
            }
        } else if (o->stale_if_skipped) {
            if (o->cs) {
                o->cs->own_state = PIN_OWN_LOST;
            }
            stale_add(&s->pin, o->name, s->primary);
        }
    }
    if (p) {
        p->own_next = p->nown;
    }
}

/* Why the primary cannot run pgdual's own statement of cs for u's Bind, or NULL. */
const char *pin_cte_own_why(struct session *s, const struct unit *u, const struct pin_cte_stmt *cs)
{
    const struct pin_catalog *c = &s->pin;
    if (cs->own_state == PIN_OWN_NONE) {
        return "pgdual's statement for it could not be prepared with it";
    }
    if (cs->own_state == PIN_OWN_LOST || cs->own_primary != s->primary ||
        cs->own_gen != c->own_gen ||
        (cs->own_table &&
         (!c->cte_table || c->cte_primary != s->primary || c->cte_oid != cs->own_table))) {
        /* gone, or re-analysed at its next Bind in that moment's settings: never used */
        return "pgdual's statement for it was lost; prepare it again";
    }
    if (cs->own_state == PIN_OWN_SENT && cs->own_serial != u->serial) {
        return "its Parse was not answered yet";
    }
    if (cs->sec_epoch != c->cte_sec_epoch) {
        /* the secondary's statement is parsed at each Execute */
        return "settings or tables changed since it was prepared";
    }
    return NULL;
}

bool pin_reply_own(struct unit *u, uint8_t type)
{
    struct unit_pin *p = u->pin;
    if (!p || p->own_next >= p->nown) {
        return false;
    }
    struct pin_own *o = &p->own[p->own_next];
    if (type == PqMsg_NoticeResponse && o->type == PqMsg_ParseComplete &&
        u->reply_steps == o->step) {
        /* pgdual's Parse repeats what the client's said of the same text (an identifier
         * truncated, ...): the client heard it once, as from old alone */
        return true;
    }
    bool no_data = o->type == PqMsg_RowDescription && type == PqMsg_NoData;
    if (u->reply_steps != o->step || (type != o->type && !no_data)) {
        return false;
    }
    p->own_next++;
    o->done = true;
    if (type == PqMsg_ParseComplete && o->cs && o->cs->own_state == PIN_OWN_SENT &&
        strcmp(o->cs->own, o->name) == 0) {
        o->cs->own_state = PIN_OWN_MADE;
    }
    return true;
}
