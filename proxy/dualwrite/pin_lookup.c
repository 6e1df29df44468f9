/* proxy/dualwrite/pin_lookup.c: what pinning knows of the tables a session writes: looked up on the
 * session's own primary connection before the statement that needs it (pgdual's internal unit,
 * the client's message waiting at the gate), kept per session and shared by sessions that log in
 * alike, dropped when the catalog may have changed (see pin_session.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "protocol/pqproto.h"
#include "proxy/dualwrite/pin_private.h"
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
    pin_cte_stmt_unref(c->msg_cte);
    pin_cte_live_free(c);
    pin_cte_names_free(c);
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
void pin_catalog_message_done(struct pin_catalog *c)
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
    } else if (!c->lookup.oneshot && !c->lookup_in_txn) {
        shared_put(s, &c->lookup, c->lookup_gen / 2);
    }
    cache_put(c, &c->lookup);
}

/* ---- when pinning applies -------------------------------------------------------------------- */

/* Statements are analyzed (and tables looked up) while there is a secondary to mirror to and a
 * parse pgdual can trust: what makes up values is then pinned, or counted when it cannot be. */
/* May a statement not answered yet change how the server lexes the next text (a SET of
 * standard_conforming_strings or client_encoding, a ROLLBACK undoing one, code pgdual cannot see
 * into)? Then a text is not split and rewritten where the server may split it otherwise. */
static bool lexing_may_change(const struct session *s)
{
    for (const struct unit *v = s->mirror.head; v; v = v->next) {
        if (!v->internal && v->mirrored && !v->prim_done && (v->catalog_change || v->txn_end)) {
            return true;
        }
    }
    return false;
}

bool pin_analysis_active(const struct session *s)
{
    return s->dials->d.mirror && s->mirror.secondary_up && !session_lexing_settings_unsafe(s) &&
           !lexing_may_change(s);
}

/* Why values cannot be pinned now although the analysis runs, or NULL: pinning needs lockstep
 * (the secondary's statement is built from the primary's answer) and pin_writes. */
const char *pin_off_reason(const struct session *s)
{
    const struct dials *d = &s->dials->d;
    if (!d->pin_writes) {
        return "pin_writes = off";
    }
    return d->mirror_order != MIRROR_LOCKSTEP ? "mirror_order = parallel" : NULL;
}

bool pin_active(const struct session *s)
{
    return pin_analysis_active(s) && !pin_off_reason(s);
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
        return !st->nested_dml; /* triggers and rules count even where nothing else does */
    default:
        return false;
    }
}

/* The text of a Query or Parse, or NULL. A Parse ends with its declared parameter types, not a
 * NUL: a check of its last byte took every Parse declaring types (PgJDBC, Npgsql) for none. */
static const char *message_sql(const uint8_t *msg, size_t len)
{
    if (len < 6) {
        return NULL;
    }
    if (msg[0] == PqMsg_Query) {
        return msg[len - 1] == '\0' ? (const char *)msg + 5 : NULL;
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
    if (session_classify_text(s, sql, &r) != 0 || r.kind != CLASSIFY_MIRROR || r.parse_error ||
        r.nstatements <= 0 || (r.txn_control && r.nstatements == 1)) {
        return false;
    }
    c->plan_valid = pin_analyze(sql, &s->worker->classify_opts, &c->plan) == 0;
    return c->plan_valid;
}

/* A simple Query's statements are analysed by the server right before each runs (pin_stmt's
 * runs_now); a Parse's may run much later. */
static void plan_mark_runs_now(struct pin_plan *p)
{
    for (int i = 0; i < p->n; i++) {
        p->stmts[i].runs_now = true;
    }
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
    struct unit *u =
        mirror_internal_unit(&s->mirror, before, (const char *)sql.data, &s->to_primary);
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
    /* Read inside a transaction block (its snapshot may be older, its own DDL not committed):
     * this session's only. */
    c->lookup_in_txn = s->mirror.prim_status != PQ_TXN_IDLE;
    c->lookup_pending = true;
    return 1;
}

/* pgdual's temporary table for the rows of data-modifying WITH queries, made on the primary
 * before the message that needs it: in a DO block that swallows its error (a read-only
 * transaction, no TEMP privilege: the client's transaction must not fail for it), then a check
 * that it is there, whose answer the message waits for. Not there: the WITH queries are not
 * pinned. */
static int make_cte_table(struct session *s, struct unit *before)
{
    struct pin_catalog *c = &s->pin;
    if ((c->cte_table && c->cte_primary == s->primary) || c->cte_create_tried || !pin_active(s)) {
        return 0;
    }
    if (!mirror_internal_unit(&s->mirror, before, PIN_CTE_CREATE, &s->to_primary)) {
        return -1;
    }
    struct unit *u = mirror_internal_unit(&s->mirror, before, PIN_CTE_CHECK, &s->to_primary);
    if (!u || !(u->pin = calloc(1, sizeof(*u->pin)))) {
        return -1;
    }
    u->pin->create = true;
    c->cte_create_tried = true;
    c->cte_in_txn = s->mirror.prim_status != PQ_TXN_IDLE;
    c->lookup_pending = true; /* the gate holds the message until the answer */
    return 1;
}

void pin_create_done(struct session *s, bool made, uint32_t oid, bool in_txn)
{
    struct pin_catalog *c = &s->pin;
    c->lookup_pending = false;
    c->cte_table = made;
    c->cte_oid = made ? oid : 0; /* another OID: pgdual's statements made before are lost */
    /* Made inside a block (its check answered inside one): a ROLLBACK may drop it. The status
     * at the gate may be stale (a BEGIN still unanswered ahead of it). */
    c->cte_in_txn = in_txn;
    c->cte_primary = s->primary;
    if (!made) {
        SLOG_INFO(s, "pgdual's temporary table for WITH query rows could not be made: "
                     "data-modifying WITH queries are not pinned");
    }
}

/* A Bind of a statement whose WITH writes record rows (pin_cte_exec.c): pgdual's table must be
 * there on this primary for the Bind to become pgdual's statement (made again after a DISCARD, a
 * rolled-back block or a primary switch). Not there: the Execute goes verbatim, counted. */
static int bind_lookup(struct session *s, const uint8_t *msg, size_t len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    (void)wire_cstr(&rd);
    const char *stmt = wire_cstr(&rd);
    if (!stmt || !pin_active(s)) {
        return 0;
    }
    const struct unit *b = s->mirror.building;
    uint32_t serial = b ? b->serial : s->mirror.next_serial + 1; /* the unit it joins */
    const struct stmt_class *cls = stmt_track_find(&s->stmts, serial, STMT_SPACE_STATEMENT, stmt);
    if (!cls) {
        cls = stmt_track_kept(&s->stmts, STMT_SPACE_STATEMENT, stmt); /* forgotten, kept */
    }
    struct unit *before;
    if (!cls || !cls->pin_cte || pin_cte_records(cls->pin_cte) == 0 || !lookup_place(s, &before) ||
        s->mirror.prim_status == PQ_TXN_FAILED) {
        return 0;
    }
    return make_cte_table(s, before);
}

/* What the catalog said of a relation a statement reads (pin_stmt_apply_reads): NULL when
 * pgdual could not ask, or its answer may no longer hold (DDL earlier in the same text). */
struct read_ctx {
    struct session *s;
    bool stale;
};

static const struct pin_table *read_known(void *ctx, const struct pin_relname *r)
{
    struct read_ctx *rc = ctx;
    const struct pin_cache_entry *e = rc->stale ? NULL : cache_find(rc->s, r->schema, r->rel);
    return e && !e->failed ? &e->table : NULL;
}

/* Look up the first relation st reads that pgdual knows nothing of: 1 when sent, 0 when every
 * one is known, -1. */
static int lookup_reads(struct session *s, const struct pin_stmt *st, struct unit *before)
{
    for (int i = 0; st && i < st->nreads; i++) {
        const struct pin_relname *r = &st->reads[i];
        if (!cache_find(s, r->schema, r->rel)) {
            struct pin_stmt one = {0};
            memcpy(one.schema, r->schema, sizeof(pin_name));
            memcpy(one.rel, r->rel, sizeof(pin_name));
            return send_lookup(s, &one, before);
        }
    }
    return 0;
}

/* The plan's statements as the relations they read make them: after a statement that may
 * change the catalog, what a lookup said may not hold. */
static void apply_reads(struct session *s)
{
    struct pin_catalog *c = &s->pin;
    struct read_ctx rc = {.s = s};
    for (int i = 0; i < c->plan.n; i++) {
        rc.stale = rc.stale || pin_plan_catalog_moves(&c->plan, i);
        pin_stmt_apply_reads(&c->plan.stmts[i], read_known, &rc);
    }
}

static int lookup_all(struct session *s, struct unit *before);

int pin_frontend_lookup(struct session *s, const uint8_t *msg, size_t len)
{
    struct pin_catalog *c = &s->pin;
    c->plan_valid = false;
    if (c->lookup_pending) {
        return 1; /* the gate holds the message until the answer */
    }
    if (msg[0] == PqMsg_Bind) {
        return bind_lookup(s, msg, len);
    }
    const char *sql = pin_analysis_active(s) ? message_sql(msg, len) : NULL;
    if (!sql || !plan_message(s, sql)) {
        return 0;
    }
    if (msg[0] == PqMsg_Query) {
        plan_mark_runs_now(&c->plan);
    }
    cache_sync(s);
    struct unit *before;
    int rc = 0;
    if (lookup_place(s, &before) && s->mirror.prim_status != PQ_TXN_FAILED) {
        rc = lookup_all(s, before);
    } /* else nowhere to put it, or a failed transaction would refuse it: the statements go
       * without (pin_decide says what that means) */
    if (rc == 0) {
        apply_reads(s);
    }
    return rc;
}

static int stmt_reads(const struct pin_stmt *st)
{
    int n = st->nreads + (st->outer ? st->outer->nreads : 0);
    for (int k = 0; st->outer && k < st->nctes; k++) {
        n += st->ctes[k].st.nreads;
    }
    return n;
}

/* Send the first lookup the plan needs (1), or none (0; -1 when one could not be sent). */
static int lookup_all(struct session *s, struct unit *before)
{
    struct pin_catalog *c = &s->pin;
    int targets = c->plan.n, reads = 0;
    for (int i = 0; i < c->plan.n; i++) {
        targets += c->plan.stmts[i].outer ? c->plan.stmts[i].nctes + 1 : 0;
        reads += stmt_reads(&c->plan.stmts[i]);
    }
    if (targets > PIN_CACHE_MAX / 2) {
        return 0; /* more tables than the cache keeps: no lookups (pin_decide counts them) */
    }
    /* Relations read are looked up as far as the cache keeps them with the targets. */
    bool with_reads = targets + reads <= PIN_CACHE_MAX / 2;
    bool ctes = false;
    for (int i = 0; i < c->plan.n; i++) {
        const struct pin_stmt *st = &c->plan.stmts[i];
        if (pin_plan_catalog_moves(&c->plan, i)) {
            break; /* what a lookup says now may not hold once the statements before ran */
        }
        if (needs_catalog(st) && st->rel[0] && !pin_plan_created(&c->plan, i) &&
            !cache_find(s, st->schema, st->rel)) {
            return send_lookup(s, st, before);
        }
        const struct pin_stmt *o = st->outer;
        if (o && needs_catalog(o) && o->rel[0] && !pin_plan_created(&c->plan, i) &&
            !cache_find(s, o->schema, o->rel)) {
            return send_lookup(s, o, before);
        }
        for (int k = 0; o && k < st->nctes; k++) {
            const struct pin_stmt *w = &st->ctes[k].st;
            ctes = true;
            if (w->rel[0] && !cache_find(s, w->schema, w->rel)) {
                return send_lookup(s, w, before);
            }
        }
        int rc = with_reads ? lookup_reads(s, st, before) : 0;
        rc = rc || !with_reads ? rc : lookup_reads(s, o, before);
        for (int k = 0; with_reads && rc == 0 && o && k < st->nctes; k++) {
            rc = lookup_reads(s, &st->ctes[k].st, before);
        }
        if (rc) {
            return rc;
        }
    }
    return ctes ? make_cte_table(s, before) : 0;
}

bool pin_plan_catalog_moves(const struct pin_plan *p, int i)
{
    for (int j = 0; j < i; j++) {
        if (p->stmts[j].catalog_change && !p->stmts[j].created) {
            return true;
        }
    }
    return false;
}

void pin_catalog_private(struct pin_catalog *c)
{
    c->private_only = true;
    cache_clear(c);
}

const struct pin_table *pin_table_known(struct session *s, const struct pin_stmt *st)
{
    const struct pin_cache_entry *e = cache_find(s, st->schema, st->rel);
    return e && !e->failed ? &e->table : NULL;
}
