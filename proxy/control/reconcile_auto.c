/* proxy/control/reconcile_auto.c: pgdual's own catch-up (reconcile.h): a thread of its own that,
 * while the secondary is lagging or diverged, reachable, and every session mirrors to it, begins a
 * reconciliation pass and runs `pgdual-verify --live --repair --apply --pgdual-pass N` for it,
 * reading the tool's `progress:` lines into the pass's status and its exit status into DONE (0)
 * or a failed pass (anything else; retried after reconcile_interval_ms). Blocking work (the
 * probe login, the child) stays off the event loops. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include <libpq-fe.h>

#include "proxy/control/reconcile.h"
#include "proxy/log.h"
#include "proxy/server.h"

#define AUTO_POLL_MS 100 /* how often the conditions are looked at */

struct reconcile_auto {
    struct server *srv;
    char *config_path;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop and child */
    pthread_cond_t cv;
    bool stop;
    pid_t child; /* the running pgdual-verify, 0 = none */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleep ms unless stopped; true when stopping. */
static bool auto_sleep(struct reconcile_auto *a, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->mu);
    while (!a->stop && pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT) {
    }
    bool stop = a->stop;
    pthread_mutex_unlock(&a->mu);
    return stop;
}

/* Does conninfo name key? */
static bool conninfo_has(const char *conninfo, const char *key)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    bool has = false;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        has = has || (strcmp(o->keyword, key) == 0 && o->val && o->val[0]);
    }
    PQconninfoFree(opts);
    return has;
}

/* Can the secondary be logged in to now? */
static bool probe(const struct config *cfg, int secondary)
{
    const char *ci = secondary == DIAL_NEW ? cfg->backend_new : cfg->backend_old;
    const char *keys[5] = {"dbname", "connect_timeout", NULL, NULL, NULL};
    const char *vals[5] = {ci, "3", NULL, NULL, NULL};
    int n = 2;
    if (!conninfo_has(ci, "dbname")) {
        keys[n] = "dbname";
        vals[n++] = "postgres";
    }
    if (!conninfo_has(ci, "user") && cfg->reconcile_user && cfg->reconcile_user[0]) {
        keys[n] = "user";
        vals[n++] = cfg->reconcile_user;
    }
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    bool ok = c && PQstatus(c) == CONNECTION_OK;
    PQfinish(c);
    return ok;
}

/* The tool: verify_path, else pgdual-verify next to the running binary. */
static void tool_path(const struct config *cfg, char *out, size_t cap)
{
    if (cfg->verify_path && cfg->verify_path[0]) {
        snprintf(out, cap, "%s", cfg->verify_path);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        snprintf(out, cap, "pgdual-verify");
        return;
    }
    exe[n] = '\0';
    snprintf(out, cap, "%s/pgdual-verify", dirname(exe));
}

/* "progress: tables D/T rows_repaired R" */
static void on_line(struct server *srv, uint64_t pass, const char *line)
{
    unsigned long long d, t, r;
    if (sscanf(line, "progress: tables %llu/%llu rows_repaired %llu", &d, &t, &r) == 3) {
        const char *code;
        char err[256];
        (void)reconcile_progress(srv, pass, d, t, r, &code, err, sizeof(err));
    }
}

/* Run the tool for pass; its exit status (-1: it could not run, or was killed). */
static int run_tool(struct reconcile_auto *a, const struct config *cfg,
                    const struct reconcile_start_row *row)
{
    char path[PATH_MAX], passno[24], tables[sizeof(row->tables)], primary[4];
    tool_path(cfg, path, sizeof(path));
    snprintf(passno, sizeof(passno), "%" PRIu64, row->pass);
    snprintf(tables, sizeof(tables), "%s", row->tables[0] ? row->tables : "*");
    snprintf(primary, sizeof(primary), "%s", row->primary == DIAL_NEW ? "new" : "old");
    static char o_c[] = "-c", o_live[] = "--live", o_repair[] = "--repair", o_apply[] = "--apply",
                o_np[] = "--no-progress", o_pass[] = "--pgdual-pass", o_tables[] = "--tables-db",
                o_primary[] = "--primary";
    char *argv[] = {path,   o_c,    a->config_path, o_live, o_repair,  o_apply, o_np,
                    o_pass, passno, o_tables,       tables, o_primary, primary, NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        LOG_ERR("reconcile: pass %" PRIu64 ": pipe: %s", row->pass, strerror(errno));
        return -1;
    }
    /* The environment, with PGUSER = reconcile_user (built before the spawn: no allocation in
     * the child of a threaded process). */
    size_t nenv = 0;
    while (environ[nenv]) {
        nenv++;
    }
    char **envp = calloc(nenv + 2, sizeof(*envp));
    char pguser[256];
    size_t k = 0;
    bool set_user = cfg->reconcile_user && cfg->reconcile_user[0];
    for (size_t i = 0; envp && i < nenv; i++) {
        if (!set_user || strncmp(environ[i], "PGUSER=", 7) != 0) {
            envp[k++] = environ[i];
        }
    }
    if (envp && set_user) {
        snprintf(pguser, sizeof(pguser), "PGUSER=%s", cfg->reconcile_user);
        envp[k++] = pguser;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawnattr_init(&at);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &defaults);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pthread_mutex_lock(&a->mu);
    pid_t pid = -1;
    int rc = a->stop || !envp ? ECANCELED : posix_spawn(&pid, path, &fa, &at, argv, envp);
    a->child = rc == 0 ? pid : 0;
    pthread_mutex_unlock(&a->mu);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(envp);
    close(fds[1]);
    if (rc != 0) {
        LOG_ERR("reconcile: pass %" PRIu64 ": cannot run %s: %s", row->pass, path, strerror(rc));
        close(fds[0]);
        return -1;
    }
    LOG_INFO("reconcile: pass %" PRIu64 ": running %s (pid %d)", row->pass, path, (int)pid);
    /* A miss between the pass's start and the spawn made it stale while there was no child to
     * stop (reconcile_stale_locked saw none): stop it now. Not under a->mu: the stale path takes
     * dials_lock, then a->mu. */
    struct reconcile_pass now;
    reconcile_get(a->srv, &now);
    if (now.pass != row->pass) {
        reconcile_auto_kill(a->srv);
    }
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        on_line(a->srv, row->pass, line);
    }
    if (f) {
        fclose(f);
    } else {
        close(fds[0]);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&a->mu);
    a->child = 0;
    pthread_mutex_unlock(&a->mu);
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    LOG_WARN("reconcile: pass %" PRIu64 ": the tool ended by signal %d", row->pass,
             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return -1;
}

/* May a pass begin now? */
static bool pass_wanted(struct server *srv)
{
    int st = atomic_load(&srv->secondary_state);
    if (st != SYNC_lagging && st != SYNC_diverged) {
        return false; /* in_sync; reconciling; seeding: the backfill is the operator's */
    }
    if (atomic_load(&srv->sessions_without_secondary) > 0) {
        return false; /* their writes still miss the secondary */
    }
    struct reconcile_pass r;
    reconcile_get(srv, &r);
    return r.pass == 0;
}

/* One attempt: probe, begin a pass, run it. True when it ended in_sync. */
static bool attempt(struct reconcile_auto *a, const struct config *cfg)
{
    struct server *srv = a->srv;
    struct dials_snapshot *snap = server_dials_get(srv);
    int secondary = snap->d.primary ^ 1;
    bool mirror = snap->d.mirror;
    dials_snapshot_unref(snap);
    if (!mirror || !probe(cfg, secondary)) {
        return false;
    }
    struct reconcile_start_row row;
    const char *code;
    char err[512];
    if (!pass_wanted(srv) || reconcile_start(srv, true, &row, &code, err, sizeof(err)) < 0) {
        return false;
    }
    uint64_t t0 = mono_ms();
    int rc = run_tool(a, cfg, &row);
    uint64_t took = mono_ms() - t0;
    if (rc == 0) {
        if (reconcile_done(srv, row.pass, &code, err, sizeof(err)) == 0) {
            LOG_INFO("reconcile: pass %" PRIu64 " ended in_sync after %" PRIu64 " ms", row.pass,
                     took);
            return true;
        }
        LOG_WARN("reconcile: pass %" PRIu64 " ended after %" PRIu64 " ms: %s", row.pass, took, err);
        return false;
    }
    LOG_WARN("reconcile: pass %" PRIu64 " failed after %" PRIu64 " ms (the tool exited %d)",
             row.pass, took, rc);
    if (reconcile_abort(srv, row.pass, RECONCILE_failed, &code, err, sizeof(err)) < 0) {
        LOG_INFO("reconcile: pass %" PRIu64 ": %s", row.pass, err);
    }
    return false;
}

static void *auto_main(void *arg)
{
    struct reconcile_auto *a = arg;
    uint64_t next_try = 0;
    for (;;) {
        if (auto_sleep(a, AUTO_POLL_MS)) {
            break;
        }
        if (mono_ms() < next_try || !pass_wanted(a->srv)) {
            continue;
        }
        struct server_conf *conf = server_conf_get(a->srv);
        if (conf->cfg.reconcile_auto && !attempt(a, &conf->cfg)) {
            next_try = mono_ms() + (uint64_t)conf->cfg.reconcile_interval_ms;
        }
        server_conf_unref(conf);
    }
    return NULL;
}

int reconcile_auto_start(struct server *srv, const char *config_path, struct reconcile_auto **out)
{
    *out = NULL;
    struct reconcile_auto *a = calloc(1, sizeof(*a));
    if (!a) {
        return -ENOMEM;
    }
    a->srv = srv;
    a->config_path = realpath(config_path, NULL);
    if (!a->config_path) {
        a->config_path = strdup(config_path);
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    int rc = a->config_path ? pthread_create(&a->thread, NULL, auto_main, a) : ENOMEM;
    if (rc != 0) {
        free(a->config_path);
        free(a);
        return -rc;
    }
    *out = a;
    return 0;
}

void reconcile_auto_stop(struct reconcile_auto *a)
{
    if (!a) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    if (a->child > 0) {
        kill(a->child, SIGTERM);
    }
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a->config_path);
    free(a);
}

void reconcile_auto_kill(struct server *srv)
{
    struct reconcile_auto *a = srv->reconcile_auto;
    if (!a) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    if (a->child > 0) {
        LOG_INFO("reconcile: stopping the pass's tool (pid %d)", (int)a->child);
        kill(a->child, SIGTERM);
    }
    pthread_mutex_unlock(&a->mu);
}
