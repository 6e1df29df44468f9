/* proxy/control/seqsync.c: the sequence sync of a primary switch: the SQL that raises the new
 * primary's sequences (blocking libpq), and the thread that runs it once the switch gate holds
 * and takes the switch back when it fails. See seqsync.h. */
#include "proxy/control/seqsync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "config/dials.h"
#include "proxy/log.h"
#include "proxy/server.h"

/* ---- the SQL ------------------------------------------------------------------------------ */

/* Connectable, non-template databases; only those named in $1 (comma-separated) unless it is
 * empty. Byte order on both sides, so the two lists compare with strcmp. */
#define SQL_DATABASES                                                                        \
    "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate "   \
    "AND ($1 = '' OR datname IN (SELECT btrim(d) FROM unnest(string_to_array($1, ',')) d)) " \
    "ORDER BY datname COLLATE \"C\""

/* The old primary's sequences as one JSON array of {name, last}: name is the quoted qualified
 * name (format %I: the server quotes), last NULL when the sequence was never called. Temporary
 * sequences (other sessions') are left out. pg_sequence_last_value fails without SELECT or
 * USAGE on the sequence: a sync that cannot read a sequence fails rather than skips it. */
#define SQL_FROM                                                                                 \
    "SELECT coalesce(json_agg(json_build_object('name', format('%I.%I', n.nspname, c.relname), " \
    "'last', pg_catalog.pg_sequence_last_value(c.oid))), '[]')::text "                           \
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "       \
    "WHERE c.relkind = 'S' AND c.relpersistence <> 't'"

/* On the new primary, in one statement: match $1 (SQL_FROM's JSON) by quoted name and raise
 * each sequence that is behind in its direction of increment (a never-called one is behind when
 * old's value is at or past its start) with setval(seq, old's last value, true). One row per
 * sequence of either side: name, on old, on new, raised (old's value, or NULL). */
#define SQL_RAISE                                                                                 \
    "WITH o AS (SELECT name, last FROM json_to_recordset($1::json) AS o(name text, last "         \
    "bigint)), "                                                                                  \
    "t AS (SELECT format('%I.%I', n.nspname, c.relname) AS name, c.oid, s.seqincrement AS inc, "  \
    "s.seqstart AS start, pg_catalog.pg_sequence_last_value(c.oid) AS last "                      \
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "        \
    "JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid "                                        \
    "WHERE c.relkind = 'S' AND c.relpersistence <> 't'), "                                        \
    "j AS (SELECT coalesce(o.name, t.name) AS name, o.name IS NOT NULL AS on_from, "              \
    "t.name IS NOT NULL AS on_to, o.last AS from_last, t.last AS to_last, t.inc, t.start, t.oid " \
    "FROM o FULL JOIN t ON t.name = o.name) "                                                     \
    "SELECT name, on_from, on_to, CASE WHEN on_from AND on_to AND from_last IS NOT NULL AND "     \
    "CASE WHEN to_last IS NULL THEN (inc > 0 AND from_last >= start) OR "                         \
    "(inc < 0 AND from_last <= start) ELSE (inc > 0 AND to_last < from_last) OR "                 \
    "(inc < 0 AND to_last > from_last) END "                                                      \
    "THEN pg_catalog.setval(oid, from_last, true) END AS raised FROM j ORDER BY name COLLATE "    \
    "\"C\""

/* Bounds for each statement of the sync (the switch gate is closed meanwhile). */
#define SQL_LIMITS "SET statement_timeout = '60s'; SET lock_timeout = '10s'"

#define SEQSYNC_LOG_NAMES 10 /* per database, names of skipped sequences logged */

static const char *const side_names[2] = {"old", "new"};

/* "what (database "db"): msg", libpq's message on one line (it puts a hint on a second). */
static void set_err(char *err, size_t errlen, const char *what, const char *db, const char *msg)
{
    int n = snprintf(err, errlen, "%s (database \"%s\"): ", what, db);
    size_t at = n < 0 || errlen == 0 ? 0 : (size_t)n;
    if (errlen > 0 && at >= errlen) {
        at = errlen - 1; /* cut */
    }
    for (const char *p = msg; *p && at + 1 < errlen; p++) {
        bool blank = *p == '\n' || *p == '\t' || *p == ' ';
        if (!blank || (at > 0 && err[at - 1] != ' ')) {
            err[at++] = blank ? ' ' : *p;
        }
    }
    while (at > 0 && err[at - 1] == ' ') {
        at--;
    }
    if (errlen > 0) {
        err[at] = '\0';
    }
}

/* A blocking connection with conninfo's settings and dbname replaced by db. */
static PGconn *sync_connect(const char *conninfo, const char *db, int timeout_s, const char *side,
                            char *err, size_t errlen)
{
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", timeout_s);
    /* The first dbname is expanded as a connection string; the second replaces its dbname.
     * connect_timeout comes first, so the connection string may set its own. */
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", "dbname", NULL};
    const char *vals[] = {timeout, "pgdual sequence sync", conninfo, db, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    char what[64];
    snprintf(what, sizeof(what), "cannot connect to %s", side);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        set_err(err, errlen, what, db, c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    PGresult *r = PQexec(c, SQL_LIMITS);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        set_err(err, errlen, what, db, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* One statement with one text parameter; NULL (err set) unless it returned rows. */
static PGresult *query1(PGconn *c, const char *sql, const char *param, const char *what,
                        const char *db, char *err, size_t errlen)
{
    const char *params[1] = {param};
    PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, what, db, PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* The database list of one side (SQL_DATABASES), through its maintenance database. */
static PGresult *list_databases(const char *conninfo, const char *databases, int timeout_s,
                                const char *side, char *err, size_t errlen)
{
    static const char *const maint[] = {"postgres", "template1"};
    char first[512] = "";
    for (size_t i = 0; i < 2; i++) {
        PGconn *c = sync_connect(conninfo, maint[i], timeout_s, side, err, errlen);
        if (!c) {
            if (!first[0]) {
                snprintf(first, sizeof(first), "%s", err);
            }
            continue;
        }
        PGresult *r =
            query1(c, SQL_DATABASES, databases, "cannot list databases", maint[i], err, errlen);
        PQfinish(c);
        return r;
    }
    snprintf(err, errlen, "%s", first);
    return NULL;
}

static bool result_has(const PGresult *r, const char *name)
{
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 0), name) == 0) {
            return true;
        }
    }
    return false;
}

/* Count and log SQL_RAISE's rows. */
static void count_raised(const PGresult *r, const char *db, const char *from, const char *to,
                         struct seqsync_counts *counts)
{
    uint64_t synced = 0, checked = 0, skipped = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        bool on_from = PQgetvalue(r, i, 1)[0] == 't', on_to = PQgetvalue(r, i, 2)[0] == 't';
        if (!on_from || !on_to) {
            if (skipped++ < SEQSYNC_LOG_NAMES) {
                LOG_WARN("sequence sync: %s.%s exists on %s only: skipped", db, name,
                         on_from ? from : to);
            }
            continue;
        }
        checked++;
        if (!PQgetisnull(r, i, 3)) {
            synced++;
            if (log_enabled(LOG_DEBUG)) {
                log_msg(LOG_DEBUG, "sequence sync: %s.%s on %s raised to %s", db, name, to,
                        PQgetvalue(r, i, 3));
            }
        }
    }
    if (skipped > SEQSYNC_LOG_NAMES) {
        LOG_WARN("sequence sync: %s: %llu more sequences on one side only skipped", db,
                 (unsigned long long)(skipped - SEQSYNC_LOG_NAMES));
    }
    LOG_INFO("sequence sync: database %s: %llu sequences compared, %llu raised on %s", db,
             (unsigned long long)checked, (unsigned long long)synced, to);
    counts->checked += checked;
    counts->synced += synced;
    counts->skipped += skipped;
}

/* Sync one database present on both sides. */
static int sync_database(const char *from_ci, const char *to_ci, const char *db, int timeout_s,
                         const char *from, const char *to, struct seqsync_counts *counts, char *err,
                         size_t errlen)
{
    PGconn *cf = sync_connect(from_ci, db, timeout_s, from, err, errlen);
    if (!cf) {
        return -EIO;
    }
    PGresult *seqs =
        query1(cf, SQL_FROM, NULL, "cannot read the sequences of the old primary", db, err, errlen);
    PQfinish(cf);
    if (!seqs) {
        return -EIO;
    }
    int rc = -EIO;
    PGconn *ct = sync_connect(to_ci, db, timeout_s, to, err, errlen);
    if (ct) {
        PGresult *r = query1(ct, SQL_RAISE, PQgetvalue(seqs, 0, 0),
                             "cannot raise the sequences of the new primary", db, err, errlen);
        if (r) {
            count_raised(r, db, from, to, counts);
            PQclear(r);
            rc = 0;
        }
        PQfinish(ct);
    }
    PQclear(seqs);
    return rc;
}

int seqsync_run(const char *from_conninfo, const char *to_conninfo, const char *databases,
                int connect_timeout_s, bool keep_going, struct seqsync_counts *counts, char *err,
                size_t errlen)
{
    memset(counts, 0, sizeof(*counts));
    err[0] = '\0';
    const char *from = "the old primary", *to = "the new primary";
    PGresult *dbf = list_databases(from_conninfo, databases, connect_timeout_s, from, err, errlen);
    if (!dbf) {
        return -EIO;
    }
    PGresult *dbt = list_databases(to_conninfo, databases, connect_timeout_s, to, err, errlen);
    if (!dbt) {
        PQclear(dbf);
        return -EIO;
    }
    int rc = 0;
    char why[512];
    for (int i = 0; i < PQntuples(dbf) && (rc == 0 || keep_going); i++) {
        const char *db = PQgetvalue(dbf, i, 0);
        if (!result_has(dbt, db)) {
            LOG_WARN("sequence sync: database %s is on the old primary only: skipped", db);
            counts->skipped++;
            continue;
        }
        counts->databases++;
        if (sync_database(from_conninfo, to_conninfo, db, connect_timeout_s, from, to, counts, why,
                          sizeof(why)) < 0) {
            LOG_ERR("sequence sync: %s", why);
            if (rc == 0) {
                snprintf(err, errlen, "%s", why);
            }
            rc = -EIO;
        }
    }
    PQclear(dbf);
    PQclear(dbt);
    return rc;
}

/* ---- the switch and its thread ------------------------------------------------------------ */

#define SEQSYNC_RESULTS      16   /* outcomes kept for the admin consoles that wait for them */
#define SEQSYNC_RECHECK_MS   100  /* the gate is looked at again at least this often */
#define SEQSYNC_WAIT_LOG_S   10   /* a switch waiting for its gate says so this often */
#define SEQSYNC_STOP_WAIT_MS 5000 /* at stop, how long a waiting switch may still wait */

/* The switch in progress: sessions wait at their gate until it is decided. */
struct seqsync_job {
    uint64_t gen;     /* the switch's generation (+1 per change of the primary dial) */
    int from;         /* the primary sessions ran on before (the settled one) */
    int to;           /* the primary the dials name now */
    uint64_t version; /* every worker must have dials of this version before the sync */
    bool force;       /* FORCE: a failed sync switches anyway */
    bool undo;        /* the switch back after a failed sync: keeps that failure as the status */
};

struct seqsync_result {
    uint64_t gen;
    enum seqsync_outcome outcome;
    char err[512];
};

struct seqsync {
    struct server *srv;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* a job, a poke or stop */
    bool stop;
    uint64_t pokes;
    bool active; /* job is in progress: server->switch_pending is set */
    bool running;
    struct seqsync_job job;
    int settled;    /* the primary sessions may run on while no job is active */
    uint64_t gen;   /* the last generation handed out */
    char fail[512]; /* why the sync failed, for the undo's record */
    struct seqsync_result results[SEQSYNC_RESULTS]; /* by gen % SEQSYNC_RESULTS */
    struct seqsync_status status;
};

const char *seqsync_outcome_name(enum seqsync_outcome o)
{
    static const char *const names[] = {
#define X(n) #n,
        SEQSYNC_OUTCOMES(X)
#undef X
    };
    return names[o];
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Called with q->lock held. */
static void record_locked(struct seqsync *q, uint64_t gen, enum seqsync_outcome o, const char *err)
{
    struct seqsync_result *r = &q->results[gen % SEQSYNC_RESULTS];
    r->gen = gen;
    r->outcome = o;
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

uint64_t seqsync_switch(struct seqsync *q, int to, uint64_t version, int flags)
{
    pthread_mutex_lock(&q->lock);
    bool undo = (flags & SEQSYNC_UNDO) != 0;
    if (undo && q->active) {
        record_locked(q, q->job.gen, SEQSYNC_failed, q->fail); /* see job_failed */
        q->status.last = SEQSYNC_failed;
    }
    q->fail[0] = '\0';
    if (!q->active) {
        q->active = true;
        q->job.from = q->settled;
    }
    q->gen++;
    q->job.gen = q->gen;
    q->job.to = to;
    q->job.version = version;
    q->job.force = (flags & SEQSYNC_FORCE) != 0;
    q->job.undo = undo;
    if (!undo) {
        q->status.last = SEQSYNC_waiting;
    }
    atomic_store(&q->srv->switch_pending, true);
    pthread_cond_signal(&q->cond);
    uint64_t gen = q->gen;
    pthread_mutex_unlock(&q->lock);
    return gen;
}

uint64_t seqsync_generation(struct seqsync *q)
{
    if (!q) {
        return 0;
    }
    pthread_mutex_lock(&q->lock);
    uint64_t gen = q->gen;
    pthread_mutex_unlock(&q->lock);
    return gen;
}

enum seqsync_outcome seqsync_outcome(struct seqsync *q, uint64_t gen, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!q || gen == 0) {
        return SEQSYNC_none;
    }
    pthread_mutex_lock(&q->lock);
    enum seqsync_outcome o = SEQSYNC_ok; /* superseded, or decided long ago */
    const struct seqsync_result *r = &q->results[gen % SEQSYNC_RESULTS];
    if (r->gen == gen) {
        o = r->outcome;
        snprintf(err, errlen, "%s", r->err);
    } else if (q->active && q->job.gen == gen) {
        o = q->running ? SEQSYNC_running : SEQSYNC_waiting;
    }
    pthread_mutex_unlock(&q->lock);
    return o;
}

void seqsync_poke(struct seqsync *q)
{
    if (!q) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    q->pokes++;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void seqsync_get_status(struct seqsync *q, struct seqsync_status *out)
{
    memset(out, 0, sizeof(*out));
    if (!q) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    *out = q->status;
    if (q->active && !q->job.undo) {
        out->last = q->running ? SEQSYNC_running : SEQSYNC_waiting;
    }
    pthread_mutex_unlock(&q->lock);
}

/* The switch is decided: sessions may go (on job->to). Nothing changes if a later switch took
 * its place meanwhile. */
static void job_done(struct seqsync *q, const struct seqsync_job *job, enum seqsync_outcome o,
                     const char *err)
{
    pthread_mutex_lock(&q->lock);
    bool current = q->active && q->job.gen == job->gen;
    if (current) {
        record_locked(q, job->gen, o, err);
        if (!job->undo) {
            q->status.last = o;
        }
        q->settled = job->to;
        q->active = false;
        atomic_store(&q->srv->switch_pending, false);
    }
    pthread_mutex_unlock(&q->lock);
    if (current) {
        server_post_gates(q->srv); /* the sessions waiting for the sync may go */
    }
}

/* The sync failed and nothing forces the switch: the primary dial goes back (persisted,
 * published). That change is itself a switch back to the settled primary, which needs no sync:
 * seqsync_switch records this job's failure when server_switch_undo makes it, so an admin
 * console never sees the failure before the dial is back. */
static void job_failed(struct seqsync *q, const struct seqsync_job *job, const char *why)
{
    pthread_mutex_lock(&q->lock);
    snprintf(q->fail, sizeof(q->fail), "%s", why);
    pthread_mutex_unlock(&q->lock);
    int rc = server_switch_undo(q->srv, job->gen, job->from);
    if (rc <= 0) {
        pthread_mutex_lock(&q->lock);
        q->fail[0] = '\0';
        pthread_mutex_unlock(&q->lock);
    }
    if (rc == 0) {
        return; /* a later change moved the primary: that one decides */
    }
    if (rc < 0) {
        /* Sessions must not wait for ever: the switch stands, as loudly as a FORCE. */
        LOG_ERR("primary switch to %s stands although the sequence sync failed: %s",
                side_names[job->to], why);
        job_done(q, job, SEQSYNC_forced, why);
        return;
    }
    LOG_ERR("primary switch to %s undone: the sequence sync failed: %s; the primary stays %s "
            "(SET primary = %s FORCE switches without synced sequences)",
            side_names[job->to], why, side_names[job->from], side_names[job->to]);
}

/* Run the sync of job (its gate is open). */
static void job_run(struct seqsync *q, const struct seqsync_job *job)
{
    if (job->from == job->to) {
        job_done(q, job, SEQSYNC_ok, NULL); /* taken back before anything ran on the other side */
        return;
    }
    pthread_mutex_lock(&q->lock);
    bool current = q->active && q->job.gen == job->gen;
    q->running = current;
    pthread_mutex_unlock(&q->lock);
    if (!current) {
        return;
    }
    struct server_conf *conf = server_conf_get(q->srv);
    const struct config *cfg = &conf->cfg;
    const char *ci[2] = {cfg->backend_old, cfg->backend_new};
    int timeout_s = (cfg->backend_connect_timeout_ms + 999) / 1000;
    LOG_INFO("primary switch to %s: syncing sequences from %s", side_names[job->to],
             side_names[job->from]);
    struct seqsync_counts n;
    char err[512];
    int rc = seqsync_run(ci[job->from], ci[job->to], cfg->sequence_sync_databases,
                         timeout_s < 2 ? 2 : timeout_s, job->force, &n, err, sizeof(err));
    server_conf_unref(conf);
    pthread_mutex_lock(&q->lock);
    q->running = false;
    q->status.synced = n.synced;
    q->status.checked = n.checked;
    q->status.at_ms = wall_ms();
    pthread_mutex_unlock(&q->lock);
    if (rc == 0) {
        LOG_INFO("primary switch to %s: %llu sequences compared in %llu databases, %llu raised",
                 side_names[job->to], (unsigned long long)n.checked,
                 (unsigned long long)n.databases, (unsigned long long)n.synced);
        job_done(q, job, SEQSYNC_ok, NULL);
    } else if (job->force) {
        LOG_ERR("primary switch to %s FORCED although the sequence sync failed: %s; ids drawn on "
                "%s may collide with rows that came from %s until its sequences are raised",
                side_names[job->to], err, side_names[job->to], side_names[job->from]);
        job_done(q, job, SEQSYNC_forced, err);
    } else {
        job_failed(q, job, err);
    }
}

/* May the sync of job run: every worker has the change, and no session runs a transaction or a
 * statement on the primary it leaves? */
static bool gate_open(struct server *srv, const struct seqsync_job *job)
{
    if (!server_dials_applied(srv, job->version)) {
        return false;
    }
    return job->from == job->to || server_busy_on(srv, job->from) == 0;
}

static void log_waiting(struct seqsync *q, const struct seqsync_job *job, time_t *last)
{
    time_t now = time(NULL);
    if (*last == 0) {
        *last = now;
    } else if (now - *last >= SEQSYNC_WAIT_LOG_S) {
        *last = now;
        LOG_WARN("primary switch to %s waits for %d session(s) still in a transaction on %s "
                 "(the sequence sync runs when they finish)",
                 side_names[job->to], server_busy_on(q->srv, job->from), side_names[job->from]);
    }
}

/* Called with q->lock held; returns with it held. Sleeps until something changes, at most
 * SEQSYNC_RECHECK_MS. */
static void wait_locked(struct seqsync *q, uint64_t pokes, uint64_t gen)
{
    if (q->pokes != pokes || q->job.gen != gen || q->stop) {
        return;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += SEQSYNC_RECHECK_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&q->cond, &q->lock, &until);
}

static void *seqsync_main(void *arg)
{
    struct seqsync *q = arg;
    time_t waiting_since = 0, stop_deadline = 0;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (!q->active) {
            waiting_since = 0;
            if (q->stop) {
                break;
            }
            pthread_cond_wait(&q->cond, &q->lock);
            continue;
        }
        struct seqsync_job job = q->job;
        uint64_t pokes = q->pokes;
        bool stopping = q->stop;
        pthread_mutex_unlock(&q->lock);
        bool open = gate_open(q->srv, &job);
        if (stopping && job.from == job.to) {
            open = true; /* nothing to sync; no worker may take the change any more */
        }
        if (open) {
            waiting_since = 0;
            job_run(q, &job);
        } else if (stopping) {
            time_t now = time(NULL);
            stop_deadline = stop_deadline ? stop_deadline : now + SEQSYNC_STOP_WAIT_MS / 1000;
            if (now >= stop_deadline) {
                LOG_ERR("stopping with the primary switch to %s not done: its sequences are not "
                        "synced from %s; check them before sessions use %s",
                        side_names[job.to], side_names[job.from], side_names[job.to]);
                pthread_mutex_lock(&q->lock);
                break;
            }
        } else {
            log_waiting(q, &job, &waiting_since);
        }
        pthread_mutex_lock(&q->lock);
        if (!open) {
            wait_locked(q, pokes, job.gen);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

struct seqsync *seqsync_new(struct server *srv, int primary)
{
    struct seqsync *q = calloc(1, sizeof(*q));
    if (!q) {
        return NULL;
    }
    q->srv = srv;
    q->settled = primary;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    return q;
}

int seqsync_start(struct seqsync *q)
{
    int rc = pthread_create(&q->thread, NULL, seqsync_main, q);
    if (rc != 0) {
        return -rc;
    }
    q->started = true;
    return 0;
}

void seqsync_stop(struct seqsync *q)
{
    if (!q || !q->started) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    q->started = false;
}

void seqsync_free(struct seqsync *q)
{
    if (!q) {
        return;
    }
    seqsync_stop(q);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
