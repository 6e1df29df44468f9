/* tests/harness/proxy.h: integration-test harness: a private pgdual in front of the test clusters,
 * libpq connection helpers, and checks that print both values and end with "N passed, N failed". */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

/* Ports and identity of the two clusters, read from $PGDUAL_TEST_CLUSTER/cluster.env. */
struct it_cluster {
    int old_port;
    int new_port;
    char host[64];
    char user[64];
    char pg_bin[256];
    char dir[512];
};

/* Extra INI lines per section, appended after the harness defaults (later keys win in inih). Each
 * may be NULL; several lines are separated by '\n'. */
struct proxy_opts {
    const char *pgdual;
    const char *backends;
    const char *cutover;
};

/* One pgdual under test. With PGDUAL_TEST_DIRECT=1 no pgdual is started: `direct` is true, `pid`
 * is 0 and `port` is the old cluster's port, so every test can be validated against PostgreSQL. */
struct proxy {
    struct it_cluster cluster;
    char dbname[64];
    char tmpdir[256]; /* per-test scratch dir: pgdual.ini, pgdual.log, state, journal */
    char ini_path[320];
    char log_path[320];
    pid_t pid; /* pgdual's pid, 0 when direct or stopped */
    int port;  /* where clients connect */
    bool direct;
};

/* Where proxy_connect() points a client. */
enum it_target { IT_PGDUAL, IT_OLD, IT_NEW };

/* Reads cluster.env, (re)creates `dbname` (UTF8, template0) on both clusters, writes the ini and
 * starts $PGDUAL_BIN, waiting up to 10 s for "listening on". Returns 0 or -1 (reason on stderr).
 * The proxy is registered for cleanup at exit and on fatal signals. */
int proxy_start(struct proxy *p, const char *dbname, const struct proxy_opts *opts)
    __attribute__((warn_unused_result));

/* SIGTERM, then SIGKILL after 5 s. Returns the wait status (or -1 if nothing ran). Counts a failed
 * check when pgdual did not exit 0 after SIGTERM or its log holds a sanitizer report. Idempotent.
 */
int proxy_stop(struct proxy *p);

/* False with PGDUAL_TEST_DIRECT=1: nothing is mirrored, so checks of the new cluster's contents are
 * skipped (printed as "# skip"). */
bool proxy_mirrors(const struct proxy *p);

/* Resident set size of pgdual in KiB from /proc/PID/status; -1 when direct or unreadable. */
long proxy_rss_kib(const struct proxy *p);

/* A connected PGconn (blocking) as the cluster user to the test database, or NULL after printing
 * the error. The caller PQfinish()es it. */
PGconn *proxy_connect(const struct proxy *p, enum it_target t);

/* The admin console's password: the spawned pgdual's auth_file holds "admin" with it, and
 * proxy_connect_as sends it for user admin (the console always asks for a password). */
#define PROXY_ADMIN_PASSWORD "it-admin-secret"

/* Like proxy_connect with an explicit user and database (e.g. "admin", "pgdual"). Returns the conn
 * even when it failed, so the caller can inspect PQstatus / PQerrorMessage. */
PGconn *proxy_connect_as(const struct proxy *p, enum it_target t, const char *user,
                         const char *dbname);

/* Runs SQL on a fresh direct connection to old or new, expecting success. Returns 0 or -1. */
int proxy_exec_direct(const struct proxy *p, enum it_target t, const char *sql)
    __attribute__((warn_unused_result));

/* Creates table marker(v text) directly on each cluster, holding 'old' on old and 'new' on new,
 * so every answer that reads it names the backend that served it. Returns 0 or -1. */
int proxy_make_marker(const struct proxy *p) __attribute__((warn_unused_result));

/* First column of the first row of `sql` as an integer on `conn`; sets *ok false on any error. */
long long it_query_ll(PGconn *conn, const char *sql, bool *ok);
/* it_query_ll on a fresh connection to target t of p (closed after): -1 when the connection or
 * the query fails. */
long long proxy_query_ll(const struct proxy *p, enum it_target t, const char *sql);

/* Value of `key` from the admin console's SHOW STATUS into buf. Returns 0, or -1 when direct or on
 * error. */
int proxy_admin_status(const struct proxy *p, const char *key, char *buf, size_t buflen)
    __attribute__((warn_unused_result));

/* Milliseconds from CLOCK_MONOTONIC. */
int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/* ---- checks ---------------------------------------------------------------------------------- */

/* Starts the program: line-buffered stdout, SIGPIPE ignored, cleanup handlers, and a watchdog that
 * kills everything and fails after `watchdog_s` seconds. */
void it_init(const char *program, int watchdog_s);
/* Prints "# name" so failures can be placed. */
void it_case(const char *name);
/* Prints "N passed, N failed", stops proxies, removes scratch dirs; returns the exit status. */
int it_finish(void);
/* A failed REQUIRE: prints the closing line and exits 1. */
__attribute__((noreturn)) void it_abort(void);

bool it_check(bool ok, const char *expr, const char *file, int line);
bool it_check_i64(int64_t a, int64_t b, int op, const char *ea, const char *eb, const char *file,
                  int line);
bool it_check_str(const char *a, const char *b, const char *ea, const char *eb, const char *file,
                  int line);
bool it_check_mem(const void *a, size_t alen, const void *b, size_t blen, const char *ea,
                  const char *eb, const char *file, int line);
bool it_check_res(const PGresult *res, ExecStatusType want, const char *ea, const char *file,
                  int line);
bool it_check_sqlstate(const PGresult *res, const char *want, const char *ea, const char *file,
                       int line);
/* Prints a diagnostic line prefixed with "# ". */
void it_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

enum { IT_OP_EQ, IT_OP_NE, IT_OP_LT, IT_OP_LE, IT_OP_GT, IT_OP_GE };

/* CHECK_* count and continue; REQUIRE_* count and end the program when false. Each evaluates its
 * arguments once and prints both sides on failure. */
#define CHECK(c) it_check((c), #c, __FILE__, __LINE__)
#define CHECK_EQ(a, b) \
    it_check_i64((int64_t)(a), (int64_t)(b), IT_OP_EQ, #a, #b, __FILE__, __LINE__)
#define CHECK_NE(a, b) \
    it_check_i64((int64_t)(a), (int64_t)(b), IT_OP_NE, #a, #b, __FILE__, __LINE__)
#define CHECK_LT(a, b) \
    it_check_i64((int64_t)(a), (int64_t)(b), IT_OP_LT, #a, #b, __FILE__, __LINE__)
#define CHECK_LE(a, b) \
    it_check_i64((int64_t)(a), (int64_t)(b), IT_OP_LE, #a, #b, __FILE__, __LINE__)
#define CHECK_GT(a, b) \
    it_check_i64((int64_t)(a), (int64_t)(b), IT_OP_GT, #a, #b, __FILE__, __LINE__)
#define CHECK_GE(a, b) \
    it_check_i64((int64_t)(a), (int64_t)(b), IT_OP_GE, #a, #b, __FILE__, __LINE__)
#define CHECK_STR(a, b)         it_check_str((a), (b), #a, #b, __FILE__, __LINE__)
#define CHECK_MEM(a, al, b, bl) it_check_mem((a), (al), (b), (bl), #a, #b, __FILE__, __LINE__)
#define CHECK_RES(r, st)        it_check_res((r), (st), #r, __FILE__, __LINE__)
#define CHECK_SQLSTATE(r, s)    it_check_sqlstate((r), (s), #r, __FILE__, __LINE__)

#define IT_REQUIRE_(x)  \
    do {                \
        if (!(x)) {     \
            it_abort(); \
        }               \
    } while (0)
#define REQUIRE(c)         IT_REQUIRE_(CHECK(c))
#define REQUIRE_EQ(a, b)   IT_REQUIRE_(CHECK_EQ(a, b))
#define REQUIRE_STR(a, b)  IT_REQUIRE_(CHECK_STR(a, b))
#define REQUIRE_RES(r, st) IT_REQUIRE_(CHECK_RES(r, st))
