/* tools/verify/pool.c: asynchronous libpq connections to both sides, a job queue per side. */
#include "tools/verify/pool.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define POOL_MAX_PER_SIDE 16

/* One queued query; params live in one allocation after the struct. */
struct job {
    struct job *next;
    char *sql;
    int nparams;
    char **params;
    pool_done_fn fn;
    void *ctx;
};

struct pconn {
    PGconn *conn;
    struct job *job; /* running job, NULL when idle */
    PGresult *last;  /* last non-NULL result of the running job */
};

struct pool {
    struct pconn c[2][POOL_MAX_PER_SIDE];
    int per_side;
    struct job *head[2], *tail[2]; /* FIFO per side */
    char error[1024];
    bool failed;
    pool_tick_fn tick;
    void *tick_ctx;
};

static void job_free(struct job *j)
{
    for (int i = 0; i < j->nparams; i++) {
        free(j->params[i]);
    }
    free(j->params);
    free(j->sql);
    free(j);
}

int pool_session_formats(PGconn *c, int side, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SET DateStyle = ISO, YMD; SET IntervalStyle = postgres;"
                            " SET TimeZone = 'UTC'; SET extra_float_digits = 3;"
                            " SET bytea_output = hex");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0) {
        snprintf(err, errlen, "cannot set the %s session's formats: %s", util_side_name(side),
                 PQerrorMessage(c));
    }
    PQclear(r);
    return rc;
}

struct pool *pool_open(const char *const conninfo[2], int per_side, char *err, size_t errlen)
{
    struct pool *p = util_xcalloc(1, sizeof *p);
    p->per_side = per_side < 1 ? 1 : per_side > POOL_MAX_PER_SIDE ? POOL_MAX_PER_SIDE : per_side;
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < p->per_side; i++) {
            PGconn *c = PQconnectdb(conninfo[s]);
            p->c[s][i].conn = c;
            /* Key ranges read here bound the live repair's locked reads on other connections:
             * a date printed under DMY read back under ISO is another date. */
            if (PQstatus(c) != CONNECTION_OK || pool_session_formats(c, s, err, errlen) < 0) {
                if (PQstatus(c) != CONNECTION_OK) {
                    snprintf(err, errlen, "cannot connect to %s database: %s", util_side_name(s),
                             PQerrorMessage(c));
                }
                size_t n = strlen(err);
                while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) {
                    err[--n] = '\0';
                }
                pool_close(p);
                return NULL;
            }
        }
    }
    return p;
}

void pool_close(struct pool *p)
{
    if (!p) {
        return;
    }
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < POOL_MAX_PER_SIDE; i++) {
            struct pconn *c = &p->c[s][i];
            if (c->job) {
                job_free(c->job);
            }
            PQclear(c->last);
            if (c->conn) {
                PQfinish(c->conn);
            }
        }
        while (p->head[s]) {
            struct job *j = p->head[s];
            p->head[s] = j->next;
            job_free(j);
        }
    }
    free(p);
}

void pool_fail(struct pool *p, const char *fmt, ...)
{
    if (p->failed) {
        return;
    }
    p->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    size_t n = strlen(p->error);
    while (n && p->error[n - 1] == '\n') {
        p->error[--n] = '\0';
    }
}

const char *pool_error(const struct pool *p)
{
    return p->error;
}

void pool_set_tick(struct pool *p, pool_tick_fn fn, void *ctx)
{
    p->tick = fn;
    p->tick_ctx = ctx;
}

PGconn *pool_conn(struct pool *p, int side)
{
    return p->c[side][0].conn;
}

int pool_per_side(const struct pool *p)
{
    return p->per_side;
}

static int exec_ok(struct pool *p, int side, PGconn *c, const char *sql, char **value)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pool_fail(p, "%s: %s", util_side_name(side), PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    if (value) {
        *value = util_xstrdup(PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    }
    PQclear(r);
    return 0;
}

int pool_begin(struct pool *p)
{
    static const char begin[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    for (int s = 0; s < 2; s++) {
        char *snap = NULL;
        PGconn *c0 = p->c[s][0].conn;
        if (exec_ok(p, s, c0, begin, NULL) < 0 ||
            exec_ok(p, s, c0, "SELECT pg_export_snapshot()", &snap) < 0) {
            free(snap);
            return -1;
        }
        for (int i = 1; i < p->per_side; i++) {
            PGconn *c = p->c[s][i].conn;
            char *lit = PQescapeLiteral(c, snap, strlen(snap));
            char sql[256];
            snprintf(sql, sizeof sql, "SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
            PQfreemem(lit);
            if (exec_ok(p, s, c, begin, NULL) < 0 || exec_ok(p, s, c, sql, NULL) < 0) {
                free(snap);
                return -1;
            }
        }
        free(snap);
    }
    return 0;
}

int pool_end(struct pool *p)
{
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < p->per_side; i++) {
            if (exec_ok(p, s, p->c[s][i].conn, "ROLLBACK", NULL) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

void pool_submit(struct pool *p, int side, const char *sql, int nparams, const char *const *params,
                 pool_done_fn fn, void *ctx)
{
    struct job *j = util_xcalloc(1, sizeof *j);
    j->sql = util_xstrdup(sql);
    j->nparams = nparams;
    j->params = util_xcalloc((size_t)nparams, sizeof *j->params);
    for (int i = 0; i < nparams; i++) {
        j->params[i] = util_xstrdup(params[i]);
    }
    j->fn = fn;
    j->ctx = ctx;
    if (p->tail[side]) {
        p->tail[side]->next = j;
    } else {
        p->head[side] = j;
    }
    p->tail[side] = j;
}

/* Hands queued jobs to idle connections. Returns the number of busy connections or -1. */
static int dispatch(struct pool *p)
{
    int busy = 0;
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < p->per_side; i++) {
            struct pconn *c = &p->c[s][i];
            if (!c->job && p->head[s]) {
                struct job *j = p->head[s];
                p->head[s] = j->next;
                if (!p->head[s]) {
                    p->tail[s] = NULL;
                }
                j->next = NULL;
                c->job = j;
                if (!PQsendQueryParams(c->conn, j->sql, j->nparams, NULL,
                                       (const char *const *)j->params, NULL, NULL, 0)) {
                    pool_fail(p, "%s: %s", util_side_name(s), PQerrorMessage(c->conn));
                    return -1;
                }
            }
            busy += c->job != NULL;
        }
    }
    return busy;
}

/* Reads what arrived on one busy connection; completes its job when the last result came. */
static int drain(struct pool *p, int s, struct pconn *c)
{
    if (!PQconsumeInput(c->conn)) {
        pool_fail(p, "%s: %s", util_side_name(s), PQerrorMessage(c->conn));
        return -1;
    }
    while (!PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (r) {
            PQclear(c->last);
            c->last = r;
            continue;
        }
        struct job *j = c->job;
        PGresult *last = c->last;
        c->job = NULL;
        c->last = NULL;
        ExecStatusType st = PQresultStatus(last);
        int rc = 0;
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            pool_fail(p, "%s: query failed: %s", util_side_name(s),
                      last ? PQresultErrorMessage(last) : PQerrorMessage(c->conn));
            rc = -1;
        } else {
            rc = j->fn(j->ctx, s, last);
        }
        PQclear(last);
        job_free(j);
        return rc < 0 ? -1 : 0;
    }
    return 0;
}

int pool_run(struct pool *p)
{
    struct pollfd fds[2 * POOL_MAX_PER_SIDE];
    struct pconn *who[2 * POOL_MAX_PER_SIDE];
    int side[2 * POOL_MAX_PER_SIDE];
    for (;;) {
        int busy = dispatch(p);
        if (busy < 0 || p->failed) {
            return -1;
        }
        if (busy == 0) {
            return 0;
        }
        int n = 0;
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < p->per_side; i++) {
                if (p->c[s][i].job) {
                    fds[n] = (struct pollfd){.fd = PQsocket(p->c[s][i].conn), .events = POLLIN};
                    who[n] = &p->c[s][i];
                    side[n++] = s;
                }
            }
        }
        int pr = poll(fds, (nfds_t)n, 200);
        if (pr < 0 && errno != EINTR) {
            pool_fail(p, "poll: %s", strerror(errno));
            return -1;
        }
        if (p->tick) {
            p->tick(p->tick_ctx);
        }
        for (int k = 0; k < n && pr > 0; k++) {
            if (fds[k].revents && drain(p, side[k], who[k]) < 0) {
                return -1;
            }
        }
    }
}

int64_t pool_bytes_received(const struct pool *p, int side, int i)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    int fd = PQsocket(p->c[side][i].conn);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) {
        return -1;
    }
    return (int64_t)ti.tcpi_bytes_received;
}
