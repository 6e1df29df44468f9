/* proxy/dualwrite/pin_frontend.c: deterministic writes on the way to the primary: the session's
 * table knowledge (looked up on its own connection before the statement that needs it), the pin
 * decision per statement, and the messages the primary gets instead of the client's (see
 * pin_session.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "protocol/pqproto.h"
#include "proxy/dualwrite/pin_session.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

/* ---- the session's table knowledge --------------------------------------------------------- */

static void entry_free(struct pin_cache_entry *e)
{
    pin_table_free(&e->table);
}

void pin_catalog_free(struct pin_catalog *c)
{
    for (int i = 0; i < c->n; i++) {
        entry_free(&c->entries[i]);
    }
    free(c->entries);
    entry_free(&c->lookup);
    pin_plan_free(&c->plan);
    wbuf_free(&c->out);
    wbuf_free(&c->relay_out);
    wbuf_free(&c->reply_msg);
    pin_shape_unref(c->msg_shape);
    memset(c, 0, sizeof(*c));
}

static void cache_clear(struct pin_catalog *c)
{
    for (int i = 0; i < c->n; i++) {
        entry_free(&c->entries[i]);
    }
    c->n = 0;
}

/* Entries of another generation, or of another primary, are gone. */
static void cache_sync(struct session *s)
{
    struct pin_catalog *c = &s->pin;
    uint64_t gen = atomic_load_explicit(&s->worker->server->catalog_gen, memory_order_acquire);
    gen = gen * 2 + (uint64_t)s->primary;
    if (c->gen != gen) {
        cache_clear(c);
        c->gen = gen;
    }
}

static struct pin_cache_entry *cache_find_own(struct pin_catalog *c, const char *schema,
                                              const char *rel)
{
    for (int i = 0; i < c->n; i++) {
        struct pin_cache_entry *e = &c->entries[i];
        if (strcmp(e->rel, rel) == 0 && strcmp(e->schema, schema) == 0) {
            return e;
        }
    }
    return NULL;
}

static void cache_put(struct pin_catalog *c, struct pin_cache_entry *from);
static bool shared_find(struct session *s, const char *schema, const char *rel,
                        struct pin_table *out);

/* The session's knowledge of a table, or the server's when it may share it (then kept). */
static struct pin_cache_entry *cache_find(struct session *s, const char *schema, const char *rel)
{
    struct pin_cache_entry *e = cache_find_own(&s->pin, schema, rel);
    if (e) {
        return e;
    }
    struct pin_cache_entry copy = {0};
    if (!shared_find(s, schema, rel, &copy.table)) {
        return NULL;
    }
    memcpy(copy.schema, schema, sizeof(pin_name));
    memcpy(copy.rel, rel, sizeof(pin_name));
    cache_put(&s->pin, &copy);
    return cache_find_own(&s->pin, schema, rel);
}

/* ---- the server's shared knowledge ---- */

#define PIN_SHARED_MAX 1024 /* entries; more empty it */

struct pin_shared_entry {
    char db[64], user[64];
    uint64_t sig;
    int primary;
    uint64_t gen; /* the server's catalog generation when it was looked up */
    pin_name schema, rel;
    struct pin_table table;
};

struct pin_shared {
    pthread_mutex_t lock; /* sessions of every worker; taken once per table a session meets */
    struct pin_shared_entry *e;
    int n;
};

struct pin_shared *pin_shared_new(void)
{
    struct pin_shared *sh = calloc(1, sizeof(*sh));
    if (sh && pthread_mutex_init(&sh->lock, NULL) != 0) {
        free(sh);
        sh = NULL;
    }
    return sh;
}

void pin_shared_free(struct pin_shared *sh)
{
    if (!sh) {
        return;
    }
    for (int i = 0; i < sh->n; i++) {
        pin_table_free(&sh->e[i].table);
    }
    free(sh->e);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

static bool shared_match(const struct pin_shared_entry *e, const struct session *s,
                         const char *schema, const char *rel)
{
    return e->sig == s->pin.login_sig && e->primary == s->primary && strcmp(e->rel, rel) == 0 &&
           strcmp(e->schema, schema) == 0 && strcmp(e->db, s->database) == 0 &&
           strcmp(e->user, s->user) == 0;
}

static uint64_t server_gen(const struct session *s)
{
    return atomic_load_explicit(&s->worker->server->catalog_gen, memory_order_acquire);
}

/* What another session like this one found, if it is still current: copied into *out. */
static bool shared_find(struct session *s, const char *schema, const char *rel,
                        struct pin_table *out)
{
    struct pin_shared *sh = s->worker->server->pin_shared;
    if (!sh || s->pin.private_only) {
        return false;
    }
    uint64_t gen = server_gen(s);
    bool found = false;
    pthread_mutex_lock(&sh->lock);
    for (int i = 0; i < sh->n && !found; i++) {
        if (shared_match(&sh->e[i], s, schema, rel)) {
            found = sh->e[i].gen == gen && pin_table_copy(out, &sh->e[i].table) == 0;
            break;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return found;
}

static void shared_put_locked(struct pin_shared *sh, struct session *s,
                              const struct pin_cache_entry *from, uint64_t gen)
{
    if (!sh->e && !(sh->e = calloc(PIN_SHARED_MAX, sizeof(*sh->e)))) {
        return;
    }
    struct pin_shared_entry *e = NULL;
    for (int i = 0; i < sh->n && !e; i++) {
        e = shared_match(&sh->e[i], s, from->schema, from->rel) ? &sh->e[i] : NULL;
    }
    if (!e) {
        if (sh->n == PIN_SHARED_MAX) {
            for (int i = 0; i < sh->n; i++) {
                pin_table_free(&sh->e[i].table);
            }
            sh->n = 0;
        }
        e = &sh->e[sh->n++];
    } else {
        pin_table_free(&e->table);
    }
    snprintf(e->db, sizeof(e->db), "%s", s->database);
    snprintf(e->user, sizeof(e->user), "%s", s->user);
    e->sig = s->pin.login_sig;
    e->primary = s->primary;
    e->gen = gen;
    memcpy(e->schema, from->schema, sizeof(pin_name));
    memcpy(e->rel, from->rel, sizeof(pin_name));
    if (pin_table_copy(&e->table, &from->table) < 0) {
        *e = sh->e[--sh->n]; /* drop it */
    }
}

static void shared_put(struct session *s, const struct pin_cache_entry *from, uint64_t gen)
{
    struct pin_shared *sh = s->worker->server->pin_shared;
    if (!sh || s->pin.private_only) {
        return;
    }
    pthread_mutex_lock(&sh->lock);
    shared_put_locked(sh, s, from, gen);
    pthread_mutex_unlock(&sh->lock);
}

/* Keep what a lookup found (moved out of *from). */
static void cache_put(struct pin_catalog *c, struct pin_cache_entry *from)
{
    if (c->n == PIN_CACHE_MAX) {
        cache_clear(c);
    }
    if (!c->entries) {
        c->entries = calloc(PIN_CACHE_MAX, sizeof(*c->entries));
        if (!c->entries) {
            entry_free(from);
            return;
        }
    }
    c->entries[c->n++] = *from;
    memset(from, 0, sizeof(*from));
}

/* The answers kept for one message only (failed or stale lookups) go once it is handled. */
static void cache_drop_oneshots(struct pin_catalog *c)
{
    for (int i = 0; i < c->n;) {
        if (c->entries[i].oneshot) {
            entry_free(&c->entries[i]);
            c->entries[i] = c->entries[--c->n];
            memset(&c->entries[c->n], 0, sizeof(c->entries[c->n]));
        } else {
            i++;
        }
    }
}

void pin_lookup_row(struct session *s, const uint8_t *body, size_t len, bool cut)
{
    struct pin_cache_entry *e = &s->pin.lookup;
    if (e->failed) {
        return;
    }
    if (cut || pin_table_add_row(&e->table, body, len, &s->worker->classify_opts) < 0) {
        e->failed = true;
    }
}

void pin_lookup_failed(struct session *s)
{
    s->pin.lookup.failed = true;
}

void pin_lookup_done(struct session *s)
{
    struct pin_catalog *c = &s->pin;
    c->lookup_pending = false;
    cache_sync(s);
    /* Kept for good only if no catalog change ended meanwhile; else it serves the message it
     * was made for, and the next one looks again. */
    c->lookup.oneshot = c->lookup.failed || c->gen != c->lookup_gen;
    if (c->lookup.failed) {
        SLOG_INFO(s, "catalog lookup for pinning failed for %s%s%s", c->lookup.schema,
                  c->lookup.schema[0] ? "." : "", c->lookup.rel);
        pin_table_free(&c->lookup.table);
    } else if (!c->lookup.oneshot) {
        shared_put(s, &c->lookup, c->lookup_gen / 2);
    }
    cache_put(c, &c->lookup);
}

/* ---- when pinning applies -------------------------------------------------------------------- */

/* Statements are analyzed (and tables looked up) while there is a secondary to mirror to and a
 * parse pgdual can trust: what makes up values is then pinned, or counted when it cannot be. */
static bool analysis_active(const struct session *s)
{
    return s->dials->d.mirror && s->mirror.secondary_up && !session_lexing_settings_unsafe(s);
}

/* Why values cannot be pinned now although the analysis runs, or NULL: pinning needs lockstep
 * (the secondary's statement is built from the primary's answer) and pin_writes. */
static const char *pin_off_reason(const struct session *s)
{
    const struct dials *d = &s->dials->d;
    if (!d->pin_writes) {
        return "pin_writes = off";
    }
    return d->mirror_order != MIRROR_LOCKSTEP ? "mirror_order = parallel" : NULL;
}

static bool pin_active(const struct session *s)
{
    return analysis_active(s) && !pin_off_reason(s);
}

static bool needs_catalog(const struct pin_stmt *st)
{
    switch (st->verb) {
    case PIN_VERB_INSERT:
    case PIN_VERB_COPY:
    case PIN_VERB_MERGE:
        return true;
    case PIN_VERB_UPDATE:
    case PIN_VERB_DELETE:
        return !st->nested_dml && (st->nondeterministic || st->uses_default);
    default:
        return false;
    }
}

/* The text of a Query or Parse, or NULL. */
static const char *message_sql(const uint8_t *msg, size_t len)
{
    if (len < 6 || msg[len - 1] != '\0') {
        return NULL;
    }
    if (msg[0] == PqMsg_Query) {
        return (const char *)msg + 5;
    }
    if (msg[0] != PqMsg_Parse) {
        return NULL;
    }
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    (void)wire_cstr(&rd);
    return wire_cstr(&rd);
}

/* Plan the message's statements into s->pin.plan when some of them may write. */
static bool plan_message(struct session *s, const char *sql)
{
    struct pin_catalog *c = &s->pin;
    pin_plan_free(&c->plan);
    c->plan_valid = false;
    struct classify_result r;
    if (classify_cached(s->worker->classify, sql, &s->worker->classify_opts, &r) != 0 ||
        r.kind != CLASSIFY_MIRROR || r.parse_error || r.nstatements <= 0 ||
        (r.txn_control && r.nstatements == 1)) {
        return false;
    }
    c->plan_valid = pin_analyze(sql, &s->worker->classify_opts, &c->plan) == 0;
    return c->plan_valid;
}

/* Where a lookup can go now: before the unit being received if nothing of it went to the
 * primary yet, or at the end of the queue between units. false: nowhere. */
static bool lookup_place(struct session *s, struct unit **before)
{
    struct unit *b = s->mirror.building;
    *before = b;
    return !b || (b->defer_fwd && !b->prim_rewritten);
}

static int send_lookup(struct session *s, const struct pin_stmt *st, struct unit *before)
{
    struct pin_catalog *c = &s->pin;
    struct wbuf sql;
    wbuf_init(&sql);
    if (pin_catalog_query(st, &sql) < 0) {
        wbuf_free(&sql);
        return -1;
    }
    struct unit *u = mirror_internal_unit(&s->mirror, before, (const char *)sql.data,
                                          &s->to_primary);
    wbuf_free(&sql);
    if (!u || !(u->pin = calloc(1, sizeof(*u->pin)))) {
        return -1;
    }
    u->pin->lookup = true;
    entry_free(&c->lookup);
    memset(&c->lookup, 0, sizeof(c->lookup));
    memcpy(c->lookup.schema, st->schema, sizeof(pin_name));
    memcpy(c->lookup.rel, st->rel, sizeof(pin_name));
    c->lookup_gen = c->gen;
    c->lookup_pending = true;
    return 1;
}

int pin_frontend_lookup(struct session *s, const uint8_t *msg, size_t len)
{
    struct pin_catalog *c = &s->pin;
    c->plan_valid = false;
    if (c->lookup_pending) {
        return 1; /* the gate holds the message until the answer */
    }
    const char *sql = analysis_active(s) ? message_sql(msg, len) : NULL;
    if (!sql || !plan_message(s, sql)) {
        return 0;
    }
    cache_sync(s);
    struct unit *before;
    if (!lookup_place(s, &before) || s->mirror.prim_status == PQ_TXN_FAILED) {
        /* Nowhere to put it, or a failed transaction would refuse it: the statements go
         * without (pin_decide says what that means). */
        return 0;
    }
    for (int i = 0; i < c->plan.n; i++) {
        const struct pin_stmt *st = &c->plan.stmts[i];
        if (needs_catalog(st) && st->rel[0] && !cache_find(s, st->schema, st->rel)) {
            return send_lookup(s, st, before);
        }
    }
    return 0;
}

/* ---- the decision and the messages for the primary -------------------------------------------- */

static struct unit_pin *unit_pin_of(struct unit *u)
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
    }
    free(p->steps);
    free(p);
}

static void table_name(char *dst, size_t cap, const char *schema, const char *rel)
{
    snprintf(dst, cap, "%s%s%s", schema, schema[0] ? "." : "", rel);
}

/* u goes (partly) verbatim although it makes up values: pin_account takes it out of in_sync once
 * the primary has run it. Out of memory keeping the note: the reason is still known. */
static void note_unpinned(struct unit *u, const char *why, const char *table)
{
    struct unit_pin *p = unit_pin_of(u);
    if (p && !p->unpinned) {
        p->unpinned = why;
        snprintf(p->unpinned_table, sizeof(p->unpinned_table), "%s", table);
    } else if (!p) {
        u->pin_inactive = true; /* counted as such by pin_account */
    }
}

static struct pin_step *add_step(struct unit *u, struct pin_shape *sh)
{
    struct unit_pin *p = unit_pin_of(u);
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

static const struct pin_table *table_for(struct session *s, const struct pin_stmt *st)
{
    const struct pin_cache_entry *e = cache_find(s, st->schema, st->rel);
    return e && !e->failed ? &e->table : NULL;
}

/* Decide statement i of the plan: its shape (a new reference) when it is pinned. */
static struct pin_shape *decide(struct session *s, struct unit *u, const struct pin_stmt *st,
                                bool *known)
{
    const char *why = NULL;
    enum pin_need need = pin_decide(st, table_for(s, st), &why);
    *known = need != PIN_IMPOSSIBLE && !st->user_code; /* code of the user's may draw anything */
    if (need == PIN_NOT_NEEDED) {
        return NULL;
    }
    char table[2 * PIN_NAME_MAX + 2];
    table_name(table, sizeof(table), st->schema, st->rel);
    if (need == PIN_NEEDED && pin_off_reason(s)) {
        need = PIN_IMPOSSIBLE;
        why = pin_off_reason(s);
        *known = false;
    }
    struct pin_shape *sh = need == PIN_NEEDED ? pin_shape_new(st, table_for(s, st)) : NULL;
    if (need == PIN_NEEDED && !sh) {
        why = "out of memory pinning it";
        *known = false;
    }
    if (!sh) {
        note_unpinned(u, why, table);
    }
    return sh;
}

static void set_known(struct unit_pin *p, uint32_t index)
{
    if (p && index < 64) {
        p->known |= 1ull << index;
    }
}

/* A Query: RETURNING lists into its text, one step per pinned statement. */
static bool rewrite_query(struct session *s, struct unit *u, const char *sql)
{
    struct pin_catalog *c = &s->pin;
    struct pin_shape **shapes = calloc((size_t)c->plan.n, sizeof(*shapes));
    bool any = false, ok = shapes != NULL;
    for (int i = 0; ok && i < c->plan.n; i++) {
        bool known;
        shapes[i] = decide(s, u, &c->plan.stmts[i], &known);
        if (known) {
            set_known(unit_pin_of(u), (uint32_t)i);
        }
        any = any || shapes[i];
    }
    wbuf_reset(&c->out);
    if (ok && any) {
        size_t at = wbuf_begin_msg(&c->out, PqMsg_Query);
        ok = pin_primary_text(sql, &c->plan, shapes, &c->out) == 0;
        wbuf_end_msg(&c->out, at);
        for (int i = 0; ok && i < c->plan.n; i++) {
            struct pin_step *st = shapes[i] ? add_step(u, shapes[i]) : NULL;
            if (shapes[i] && !st) {
                ok = false;
                break;
            }
            if (st) {
                st->index = (uint32_t)i;
                st->pinned = true;
                st->start = c->plan.stmts[i].start;
                st->end = c->plan.stmts[i].end;
                u->pin->rows_unknown = u->pin->rows_unknown || shapes[i]->client_returning;
            }
        }
        if (ok) {
            u->pin->simple = true;
        }
    }
    for (int i = 0; shapes && i < c->plan.n; i++) {
        pin_shape_unref(shapes[i]);
    }
    free(shapes);
    if (!ok && any) {
        /* Nothing rewritten after all: the statements go verbatim, and say so. */
        if (u->pin) {
            for (int i = 0; i < u->pin->n; i++) {
                pin_shape_unref(u->pin->steps[i].shape);
                wbuf_free(&u->pin->steps[i].rows);
            }
            u->pin->n = 0;
        }
        note_unpinned(u, "out of memory pinning it", "");
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
    const char *why = NULL;
    enum pin_need need = pin_decide(st, table_for(s, st), &why);
    table_name(c->msg_table, sizeof(c->msg_table), st->schema, st->rel);
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
    c->msg_shape = pin_shape_new(st, table_for(s, st));
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
    (void)u;
    return true;
}

/* A Bind of a pinned statement: pgdual's columns must come back as text. Result formats given
 * per column get text for them; one format for all (binary) cannot be split without knowing the
 * client's column count, unless the client has none: then the portal is only stripped. */
static bool rewrite_bind(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    struct pin_catalog *c = &s->pin;
    c->msg_pin_off = false;
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    (void)wire_cstr(&rd);
    const char *stmt = wire_cstr(&rd);
    const struct stmt_class *cls =
        stmt ? stmt_track_find(&s->stmts, u->serial, STMT_SPACE_STATEMENT, stmt) : NULL;
    if (!cls || !cls->pin) {
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
static void note_describe(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    uint8_t kind = wire_u8(&rd);
    const char *name = wire_cstr(&rd);
    enum stmt_space sp = kind == 'S' ? STMT_SPACE_STATEMENT : STMT_SPACE_PORTAL;
    const struct stmt_class *cls = name ? stmt_track_find(&s->stmts, u->serial, sp, name) : NULL;
    struct pin_step *st = cls && cls->pin ? add_step(u, cls->pin) : NULL;
    if (st) {
        st->describe = true;
        st->reply_at = u->step_msgs;
        u->pin->rows_unknown = true; /* the secondary's answer keeps pgdual's columns */
    }
}

/* An Execute of a pinned portal: its rows are kept for the secondary (a row limit is lifted when
 * the client sees no rows anyway); of a portal that makes up values unpinned: noted. */
static bool rewrite_execute(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                            bool active)
{
    struct pin_catalog *c = &s->pin;
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    const char *portal = wire_cstr(&rd);
    uint32_t max_rows = wire_u32(&rd);
    const struct stmt_class *cls =
        portal && !rd.failed ? stmt_track_find(&s->stmts, u->serial, STMT_SPACE_PORTAL, portal)
                             : NULL;
    uint32_t index = (uint32_t)u->executes; /* on_execute counts it after this */
    if (!cls) {
        return false;
    }
    if (!cls->pin) {
        if (cls->pin_known) {
            set_known(unit_pin_of(u), index);
        } else if (cls->unpinned) {
            note_unpinned(u, cls->unpinned, cls->unpinned_table);
        } else if (cls->mirrored && cls->nondeterministic) {
            note_unpinned(u, "prepared while pinning was off", cls->unpinned_table);
        }
        return false;
    }
    bool off = cls->pin_off || !active || (max_rows != 0 && cls->pin->client_returning);
    struct pin_step *st = add_step(u, cls->pin);
    if (!st) {
        note_unpinned(u, "out of memory pinning it", cls->unpinned_table);
        return false; /* its reply is then not stripped: the session cannot go on */
    }
    st->index = index;
    st->reply_at = u->step_msgs;
    st->pinned = !off;
    /* The secondary's statement returns no rows; one run verbatim returns pgdual's columns too. */
    u->pin->rows_unknown = u->pin->rows_unknown || cls->pin->client_returning || off;
    if (off) {
        note_unpinned(u,
                      !active ? "pinning is off now"
                      : cls->pin_off
                          ? "its portal asks for binary results of every column"
                          : "a row limit on a statement with RETURNING",
                      cls->unpinned_table);
    } else {
        set_known(u->pin, index);
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

bool pin_frontend_rewrite(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                          const struct wbuf **out)
{
    struct pin_catalog *c = &s->pin;
    bool active = pin_active(s), analysis = analysis_active(s);
    bool rw = false;
    switch (msg[0]) {
    case PqMsg_Query:
        u->pin_inactive = u->pin_inactive || !analysis;
        rw = analysis && c->plan_valid && rewrite_query(s, u, (const char *)msg + 5);
        break;
    case PqMsg_Parse:
        c->msg_shape = NULL;
        c->msg_unpinned = NULL;
        c->msg_known = false;
        c->msg_table[0] = '\0';
        rw = analysis && c->plan_valid && rewrite_parse(s, u, msg, len);
        break;
    case PqMsg_Bind:
        rw = rewrite_bind(s, u, msg, len);
        break;
    case PqMsg_Describe:
        note_describe(s, u, msg, len);
        break;
    case PqMsg_Execute:
        rw = rewrite_execute(s, u, msg, len, active);
        break;
    case PqMsg_FunctionCall:
        u->pin_inactive = true; /* a function by OID: pgdual cannot pin what it makes up */
        break;
    default:
        break;
    }
    if (is_step_message(msg[0])) {
        u->step_msgs++;
    }
    if (msg[0] == PqMsg_Query || msg[0] == PqMsg_Parse) {
        pin_plan_free(&c->plan);
        c->plan_valid = false;
        cache_drop_oneshots(c);
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
    cls->pin_known = c->msg_known;
    cls->unpinned = c->msg_unpinned;
    snprintf(cls->unpinned_table, sizeof(cls->unpinned_table), "%s", c->msg_table);
}

void pin_frontend_class_done(struct session *s)
{
    pin_shape_unref(s->pin.msg_shape);
    s->pin.msg_shape = NULL;
}
