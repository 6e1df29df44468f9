/* tests/harness/proxy.c: starts and stops a private pgdual for one integration test, connects
 * libpq clients to it or to the clusters, and keeps the pass/fail tally. */
#include "tests/harness/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define IT_MAX_PROXIES 4

static const char *g_program = "it";
static int g_passed;
static int g_failed;
static bool g_finished;
/* Proxies to stop at exit. Pids are mirrored in a plain array the signal handler may read. */
static struct proxy *g_proxies[IT_MAX_PROXIES];
static volatile pid_t g_pids[IT_MAX_PROXIES];

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void it_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* ---- cleanup -----------------------------------------------------------------------------------
 */

/* Async-signal-safe: only kill(), signal() and raise(). */
static void on_fatal_signal(int sig)
{
    static const char msg[] = "\n# harness: fatal signal or watchdog, killing pgdual\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    for (int i = 0; i < IT_MAX_PROXIES; i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
        }
    }
    if (sig == SIGALRM) {
        static const char fin[] = "0 passed, 1 failed (watchdog expired)\n";
        w = write(STDOUT_FILENO, fin, sizeof fin - 1);
        _exit(1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static int on_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    (void)remove(path); /* best effort: a leftover scratch file must not fail the test */
    return 0;
}

static void proxy_print_log_tail(const struct proxy *p, int lines)
{
    FILE *f = fopen(p->log_path, "r");
    if (f == NULL) {
        return;
    }
    /* Keep the last `lines` lines in a ring; logs of one test are small enough to scan. */
    enum { RING = 200, WIDTH = 512 };
    static char ring[RING][WIDTH];
    long n = 0;
    while (fgets(ring[n % RING], WIDTH, f) != NULL) {
        n++;
    }
    fclose(f);
    if (lines > RING) {
        lines = RING;
    }
    long from = n > lines ? n - lines : 0;
    fprintf(stderr, "# ---- last %ld lines of %s ----\n", n - from, p->log_path);
    for (long i = from; i < n; i++) {
        fprintf(stderr, "# | %s", ring[i % RING]);
    }
}

static void on_exit_cleanup(void)
{
    for (int i = 0; i < IT_MAX_PROXIES; i++) {
        struct proxy *p = g_proxies[i];
        if (p == NULL) {
            continue;
        }
        if (p->pid > 0) {
            (void)proxy_stop(p);
        }
        if (g_failed > 0 && !p->direct) {
            proxy_print_log_tail(p, 60);
        }
        if (p->tmpdir[0] != '\0') {
            nftw(p->tmpdir, on_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
        g_proxies[i] = NULL;
    }
}

void it_init(const char *program, int watchdog_s)
{
    const char *slash = strrchr(program, '/');
    g_program = slash != NULL ? slash + 1 : program;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    atexit(on_exit_cleanup);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaction(sigs[i], &sa, NULL);
    }
    if (watchdog_s > 0) {
        alarm((unsigned)watchdog_s);
    }
    it_note("%s: start", g_program);
}

void it_case(const char *name)
{
    it_note("case %s", name);
}

int it_finish(void)
{
    if (!g_finished) {
        g_finished = true;
        on_exit_cleanup(); /* may add failures (pgdual exit status, sanitizer reports) */
        printf("%s: %d passed, %d failed\n", g_program, g_passed, g_failed);
    }
    return g_failed == 0 && g_passed > 0 ? 0 : 1;
}

void it_abort(void)
{
    it_note("a required check failed; stopping %s", g_program);
    exit(it_finish());
}

/* ---- checks ------------------------------------------------------------------------------------
 */

static bool it_tally(bool ok)
{
    if (ok) {
        g_passed++;
    } else {
        g_failed++;
    }
    return ok;
}

bool it_check(bool ok, const char *expr, const char *file, int line)
{
    if (!ok) {
        printf("FAIL %s:%d: CHECK(%s)\n", file, line, expr);
    }
    return it_tally(ok);
}

bool it_check_i64(int64_t a, int64_t b, int op, const char *ea, const char *eb, const char *file,
                  int line)
{
    static const char *const names[] = {"==", "!=", "<", "<=", ">", ">="};
    bool ok = false;
    switch (op) {
    case IT_OP_EQ:
        ok = a == b;
        break;
    case IT_OP_NE:
        ok = a != b;
        break;
    case IT_OP_LT:
        ok = a < b;
        break;
    case IT_OP_LE:
        ok = a <= b;
        break;
    case IT_OP_GT:
        ok = a > b;
        break;
    case IT_OP_GE:
        ok = a >= b;
        break;
    default:
        break;
    }
    if (!ok) {
        printf("FAIL %s:%d: %s %s %s\n    left:  %" PRId64 "\n    right: %" PRId64 "\n", file, line,
               ea, names[op], eb, a, b);
    }
    return it_tally(ok);
}

bool it_check_str(const char *a, const char *b, const char *ea, const char *eb, const char *file,
                  int line)
{
    bool ok = a != NULL && b != NULL && strcmp(a, b) == 0;
    if (!ok) {
        printf("FAIL %s:%d: %s == %s\n    left:  \"%s\"\n    right: \"%s\"\n", file, line, ea, eb,
               a != NULL ? a : "(null)", b != NULL ? b : "(null)");
    }
    return it_tally(ok);
}

static void it_hex_window(const char *label, const uint8_t *p, size_t len, size_t at)
{
    size_t from = at > 8 ? at - 8 : 0;
    printf("    %s[%zu..]:", label, from);
    for (size_t i = from; i < len && i < from + 24; i++) {
        printf(" %02x", p[i]);
    }
    printf("\n");
}

bool it_check_mem(const void *a, size_t alen, const void *b, size_t blen, const char *ea,
                  const char *eb, const char *file, int line)
{
    const uint8_t *pa = a;
    const uint8_t *pb = b;
    size_t at = 0;
    if (pa == NULL || pb == NULL) {
        printf("FAIL %s:%d: %s == %s: %s is NULL\n", file, line, ea, eb, pa == NULL ? ea : eb);
        return it_tally(false);
    }
    while (at < alen && at < blen && pa[at] == pb[at]) {
        at++;
    }
    bool ok = alen == blen && at == alen;
    if (!ok) {
        printf("FAIL %s:%d: %s == %s (bytes)\n    lengths %zu vs %zu, first difference at %zu\n",
               file, line, ea, eb, alen, blen, at);
        it_hex_window("left ", pa, alen, at);
        it_hex_window("right", pb, blen, at);
    }
    return it_tally(ok);
}

bool it_check_res(const PGresult *res, ExecStatusType want, const char *ea, const char *file,
                  int line)
{
    ExecStatusType got = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    bool ok = res != NULL && got == want;
    if (!ok) {
        printf("FAIL %s:%d: status of %s\n    left:  %s\n    right: %s\n    error: %s\n", file,
               line, ea, res != NULL ? PQresStatus(got) : "(null result)", PQresStatus(want),
               res != NULL ? PQresultErrorMessage(res) : "");
    }
    return it_tally(ok);
}

bool it_check_sqlstate(const PGresult *res, const char *want, const char *ea, const char *file,
                       int line)
{
    const char *got = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    bool ok = got != NULL && strcmp(got, want) == 0;
    if (!ok) {
        printf("FAIL %s:%d: SQLSTATE of %s\n    left:  %s\n    right: %s\n    error: %s\n", file,
               line, ea, got != NULL ? got : "(none)", want,
               res != NULL ? PQresultErrorMessage(res) : "(null result)");
    }
    return it_tally(ok);
}

/* ---- cluster.env and databases -----------------------------------------------------------------
 */

/* Accepts KEY=VALUE tokens separated by blanks or newlines, optional `export` and quotes. */
static void cluster_env_apply(struct it_cluster *c, char *tok)
{
    char *eq = strchr(tok, '=');
    if (eq == NULL) {
        return;
    }
    *eq = '\0';
    char *v = eq + 1;
    size_t vl = strlen(v);
    if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
        v[vl - 1] = '\0';
        v++;
    }
    if (strcmp(tok, "OLD_PORT") == 0) {
        c->old_port = atoi(v);
    } else if (strcmp(tok, "NEW_PORT") == 0) {
        c->new_port = atoi(v);
    } else if (strcmp(tok, "PGHOST") == 0) {
        snprintf(c->host, sizeof c->host, "%s", v);
    } else if (strcmp(tok, "PGUSER") == 0) {
        snprintf(c->user, sizeof c->user, "%s", v);
    } else if (strcmp(tok, "PG_BIN") == 0) {
        snprintf(c->pg_bin, sizeof c->pg_bin, "%s", v);
    } else if (strcmp(tok, "CLUSTER_DIR") == 0) {
        snprintf(c->dir, sizeof c->dir, "%s", v);
    }
}

static int cluster_read(struct it_cluster *c)
{
    const char *dir = getenv("PGDUAL_TEST_CLUSTER");
    char path[600];
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    snprintf(c->user, sizeof c->user, "postgres");
    if (dir == NULL || *dir == '\0') {
        fprintf(stderr, "harness: PGDUAL_TEST_CLUSTER is not set\n");
        return -1;
    }
    snprintf(path, sizeof path, "%s/cluster.env", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "harness: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL) {
        char *save = NULL;
        for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL;
             t = strtok_r(NULL, " \t\r\n", &save)) {
            if (t[0] == '#') {
                break;
            }
            cluster_env_apply(c, t);
        }
    }
    fclose(f);
    if (c->old_port <= 0 || c->new_port <= 0) {
        fprintf(stderr, "harness: %s lacks OLD_PORT/NEW_PORT\n", path);
        return -1;
    }
    return 0;
}

static int cluster_port(const struct it_cluster *c, enum it_target t)
{
    return t == IT_NEW ? c->new_port : c->old_port;
}

static PGconn *connect_port(const char *host, int port, const char *user, const char *dbname)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *const keys[] = {"host",
                                "port",
                                "user",
                                "dbname",
                                "connect_timeout",
                                "sslmode",
                                "gssencmode",
                                "application_name",
                                "password",
                                NULL};
    /* A NULL value is ignored: only the console's user sends a password. */
    const char *pw = strcmp(user, "admin") == 0 ? PROXY_ADMIN_PASSWORD : NULL;
    const char *const vals[] = {host,      portstr,   user,        dbname, "10",
                                "disable", "disable", "pgdual-it", pw,     NULL};
    return PQconnectdbParams(keys, vals, 0);
}

int proxy_exec_direct(const struct proxy *p, enum it_target t, const char *sql)
{
    PGconn *c =
        connect_port(p->cluster.host, cluster_port(&p->cluster, t), p->cluster.user, p->dbname);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: connect %s: %s", t == IT_NEW ? "new" : "old", PQerrorMessage(c));
    } else {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            rc = 0;
        } else {
            fprintf(stderr, "harness: %s on %s: %s", sql, t == IT_NEW ? "new" : "old",
                    PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

int proxy_make_marker(const struct proxy *p)
{
    static const char *const sql[2] = {
        "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('old')",
        "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('new')",
    };
    return proxy_exec_direct(p, IT_OLD, sql[0]) == 0 && proxy_exec_direct(p, IT_NEW, sql[1]) == 0
               ? 0
               : -1;
}

static void on_notice_ignore(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int database_recreate(const struct it_cluster *c, int port, const char *db)
{
    PGconn *conn = connect_port(c->host, port, c->user, "postgres");
    PQsetNoticeProcessor(conn, on_notice_ignore, NULL);
    char sql[256];
    int rc = -1;
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "harness: connect port %d: %s", port, PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        snprintf(sql, sizeof sql,
                 "CREATE DATABASE \"%s\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' "
                 "LC_CTYPE 'C'",
                 db);
        r = PQexec(conn, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    }
    if (rc != 0) {
        fprintf(stderr, "harness: %s on port %d: %s", sql, port, PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

/* ---- spawning pgdual ---------------------------------------------------------------------------
 */

static int write_ini(const struct proxy *p, const struct proxy_opts *o)
{
    FILE *f = fopen(p->ini_path, "w");
    if (f == NULL) {
        fprintf(stderr, "harness: %s: %s\n", p->ini_path, strerror(errno));
        return -1;
    }
    const struct it_cluster *c = &p->cluster;
    /* The console needs a password from auth_file (admin_auth_trust = off). */
    char userlist[1024];
    snprintf(userlist, sizeof userlist, "%s/userlist.txt", p->tmpdir);
    FILE *u = fopen(userlist, "w");
    if (u == NULL || fprintf(u, "\"admin\" \"%s\"\n", PROXY_ADMIN_PASSWORD) < 0 || fclose(u) != 0) {
        fprintf(stderr, "harness: %s: %s\n", userlist, strerror(errno));
        fclose(f);
        return -1;
    }
    bool own_auth = o != NULL && o->pgdual != NULL && strstr(o->pgdual, "auth_file");
    fprintf(f, "; written by tests/harness/proxy.c\n[pgdual]\n");
    if (!own_auth) {
        fprintf(f, "auth_file = %s\n", userlist);
    }
    fprintf(f,
            "listen_addr = 127.0.0.1\n"
            "listen_port = 0\nworkers = 2\nauth_type = trust\nadmin_users = admin\n"
            "state_file = %s/pgdual.state\njournal_dir = %s/journal\n"
            "divergence_log = %s/divergences.jsonl\nmetrics_port = 0\n"
            "sequence_sync_databases = %s\n%s%s\n",
            p->tmpdir, p->tmpdir, p->tmpdir, p->dbname,
            /* Tests see the states they make: pgdual's own catch-up only where asked for. */
            o != NULL && o->pgdual != NULL && strstr(o->pgdual, "reconcile_auto")
                ? ""
                : "reconcile_auto = off\n",
            o != NULL && o->pgdual != NULL ? o->pgdual : "");
    fprintf(f, "[backends]\nold = host=%s port=%d user=%s\nnew = host=%s port=%d user=%s\n%s\n",
            c->host, c->old_port, c->user, c->host, c->new_port, c->user,
            o != NULL && o->backends != NULL ? o->backends : "");
    fprintf(f,
            "[cutover]\nprimary = old\nread_new_percent = 0\ncompare_percent = 100\n"
            "mirror_order = lockstep\ncommit_wait = both\non_read_divergence = log\n%s\n",
            o != NULL && o->cutover != NULL ? o->cutover : "");
    return fclose(f) == 0 ? 0 : -1;
}

static int spawn_pgdual(struct proxy *p)
{
    const char *bin = getenv("PGDUAL_BIN");
    if (bin == NULL || *bin == '\0') {
        fprintf(stderr, "harness: PGDUAL_BIN is not set\n");
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, p->log_path, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    /* setpriv(1) gives pgdual a parent-death signal, so a test killed by ctest's timeout cannot
     * leave it running; it execs pgdual, so the pid stays the same. */
    bool wrap = access("/usr/bin/setpriv", X_OK) == 0;
    char a_setpriv[] = "/usr/bin/setpriv", a_pdeath[] = "--pdeathsig", a_kill[] = "KILL";
    char a_dashes[] = "--", a_c[] = "-c", a_bin[512];
    snprintf(a_bin, sizeof a_bin, "%s", bin);
    char *argv_wrapped[] = {a_setpriv, a_pdeath, a_kill, a_dashes, a_bin, a_c, p->ini_path, NULL};
    char **argv = wrap ? argv_wrapped : argv_wrapped + 4;
    pid_t pid = 0;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "harness: posix_spawn %s: %s\n", bin, strerror(rc));
        return -1;
    }
    p->pid = pid;
    for (int i = 0; i < IT_MAX_PROXIES; i++) {
        if (g_proxies[i] == p) {
            g_pids[i] = pid;
        }
    }
    return 0;
}

/* Polls the log for "listening on 127.0.0.1:PORT" while checking that pgdual is still alive. */
static int wait_listening(struct proxy *p, int timeout_ms)
{
    static const char needle[] = "listening on ";
    int64_t deadline = it_now_ms() + timeout_ms;
    char buf[8192];
    while (it_now_ms() < deadline) {
        FILE *f = fopen(p->log_path, "r");
        while (f != NULL && fgets(buf, sizeof buf, f) != NULL) {
            char *at = strstr(buf, needle);
            char *colon = at != NULL ? strrchr(at, ':') : NULL;
            if (colon != NULL && atoi(colon + 1) > 0) {
                p->port = atoi(colon + 1);
                fclose(f);
                return 0;
            }
        }
        if (f != NULL) {
            fclose(f);
        }
        int status = 0;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            fprintf(stderr, "harness: pgdual exited during startup (status 0x%x)\n", status);
            p->pid = 0;
            return -1;
        }
        it_sleep_ms(20);
    }
    fprintf(stderr, "harness: no \"listening on\" from pgdual within %d ms\n", timeout_ms);
    return -1;
}

static int proxy_register(struct proxy *p)
{
    for (int i = 0; i < IT_MAX_PROXIES; i++) {
        if (g_proxies[i] == NULL) {
            g_proxies[i] = p;
            g_pids[i] = 0;
            return 0;
        }
    }
    fprintf(stderr, "harness: more than %d proxies\n", IT_MAX_PROXIES);
    return -1;
}

int proxy_start(struct proxy *p, const char *dbname, const struct proxy_opts *opts)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dbname, sizeof p->dbname, "%s", dbname);
    const char *d = getenv("PGDUAL_TEST_DIRECT");
    p->direct = d != NULL && strcmp(d, "1") == 0;
    if (cluster_read(&p->cluster) != 0 || proxy_register(p) != 0) {
        return -1;
    }
    if (database_recreate(&p->cluster, p->cluster.old_port, dbname) != 0 ||
        database_recreate(&p->cluster, p->cluster.new_port, dbname) != 0) {
        return -1;
    }
    if (p->direct) {
        p->port = p->cluster.old_port;
        it_note("PGDUAL_TEST_DIRECT=1: talking to old (port %d) without pgdual", p->port);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(p->tmpdir, sizeof p->tmpdir, "%s/pgdual-%s-XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp", dbname);
    if (mkdtemp(p->tmpdir) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", p->tmpdir, strerror(errno));
        p->tmpdir[0] = '\0';
        return -1;
    }
    char journal[300];
    snprintf(journal, sizeof journal, "%s/journal", p->tmpdir);
    snprintf(p->ini_path, sizeof p->ini_path, "%s/pgdual.ini", p->tmpdir);
    snprintf(p->log_path, sizeof p->log_path, "%s/pgdual.log", p->tmpdir);
    if (mkdir(journal, 0700) != 0 || write_ini(p, opts) != 0 || spawn_pgdual(p) != 0) {
        return -1;
    }
    if (wait_listening(p, 10000) != 0) {
        proxy_print_log_tail(p, 40);
        return -1;
    }
    it_note("pgdual pid %d listening on 127.0.0.1:%d (db %s, dir %s)", (int)p->pid, p->port, dbname,
            p->tmpdir);
    return 0;
}

static bool log_has_sanitizer_report(const struct proxy *p)
{
    FILE *f = fopen(p->log_path, "r");
    char line[2048];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL) {
        found = strstr(line, "AddressSanitizer") != NULL || strstr(line, "LeakSanitizer") != NULL ||
                strstr(line, "ThreadSanitizer") != NULL || strstr(line, "runtime error:") != NULL;
    }
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

int proxy_stop(struct proxy *p)
{
    if (p->pid <= 0) {
        return -1;
    }
    pid_t pid = p->pid;
    int status = 0;
    bool done = false;
    kill(pid, SIGTERM);
    for (int64_t deadline = it_now_ms() + 5000; !done && it_now_ms() < deadline;) {
        done = waitpid(pid, &status, WNOHANG) == pid;
        if (!done) {
            it_sleep_ms(10);
        }
    }
    if (!done) {
        it_note("pgdual %d ignored SIGTERM for 5 s; sending SIGKILL", (int)pid);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    p->pid = 0;
    for (int i = 0; i < IT_MAX_PROXIES; i++) {
        if (g_proxies[i] == p) {
            g_pids[i] = 0;
        }
    }
    CHECK(done);
    if (WIFEXITED(status)) {
        CHECK_EQ(WEXITSTATUS(status), 0);
    } else {
        it_note("pgdual ended by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        CHECK(WIFEXITED(status));
    }
    CHECK(!log_has_sanitizer_report(p));
    return status;
}

bool proxy_mirrors(const struct proxy *p)
{
    /* Dual-write mirrors to new; PGDUAL_MIRRORS=0 turns these checks off. */
    const char *m = getenv("PGDUAL_MIRRORS");
    return !p->direct && !(m && strcmp(m, "0") == 0);
}

long proxy_rss_kib(const struct proxy *p)
{
    if (p->direct || p->pid <= 0) {
        return -1;
    }
    char path[64];
    char line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kib;
}

PGconn *proxy_connect_as(const struct proxy *p, enum it_target t, const char *user,
                         const char *dbname)
{
    int port = t == IT_PGDUAL ? p->port : cluster_port(&p->cluster, t);
    return connect_port(p->cluster.host, port, user, dbname);
}

PGconn *proxy_connect(const struct proxy *p, enum it_target t)
{
    PGconn *c = proxy_connect_as(p, t, p->cluster.user, p->dbname);
    if (PQstatus(c) != CONNECTION_OK) {
        printf("# connect to %s failed: %s",
               t == IT_PGDUAL ? "pgdual" : (t == IT_OLD ? "old" : "new"), PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

long long it_query_ll(PGconn *conn, const char *sql, bool *ok)
{
    PGresult *r = PQexec(conn, sql);
    long long v = 0;
    bool good = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 && !PQgetisnull(r, 0, 0);
    if (good) {
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    } else {
        printf("# query \"%s\" failed: %s\n", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
    if (ok != NULL && !good) {
        *ok = false;
    }
    return v;
}

int proxy_admin_status(const struct proxy *p, const char *key, char *buf, size_t buflen)
{
    if (p->direct) {
        return -1;
    }
    PGconn *c = proxy_connect_as(p, IT_PGDUAL, "admin", "pgdual");
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SHOW STATUS");
        for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
            if (strcmp(PQgetvalue(r, i, 0), key) == 0) {
                snprintf(buf, buflen, "%s", PQgetvalue(r, i, 1));
                rc = 0;
            }
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

long long proxy_query_ll(const struct proxy *p, enum it_target t, const char *sql)
{
    PGconn *c = proxy_connect(p, t);
    bool ok = c != NULL;
    long long n = ok ? it_query_ll(c, sql, &ok) : -1;
    PQfinish(c);
    return ok ? n : -1;
}
