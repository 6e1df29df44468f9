/* proxy/main.c: pgdual's entry point: options, config, workers, metrics endpoint, signals. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "config/state.h"
#include "proxy/control/metrics.h"
#include "proxy/control/reconcile.h"
#include "proxy/control/reload.h"
#include "proxy/control/seqsync.h"
#include "proxy/dualwrite/divergence_table.h"
#include "proxy/dualwrite/pin_session.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/auth.h"
#include "proxy/session/cancel.h"
#include "proxy/session/tls.h"
#include "proxy/worker.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pgdual -c FILE\n"
                 "  -c, --config FILE  the pgdual.ini config file\n"
                 "  -h, --help         this text\n"
                 "  -V, --version      print the version\n"
                 "      --config-reference  print every config key as a Markdown table\n"
                 "PostgreSQL proxy that mirrors writes to two databases (old and new) for\n"
                 "zero-loss migrations. SIGHUP reloads the config file; SIGTERM stops\n"
                 "gracefully (open transactions finish, up to shutdown_timeout_ms); SIGINT\n"
                 "stops at once.\n");
}

/* The README's configuration reference comes from the same table the parser reads. */
static void print_config_reference(void)
{
    printf("| section | key | default | runtime (SET) | reload | meaning |\n"
           "|---|---|---|---|---|---|\n");
    for (const struct config_key *k = config_keys; k->name; k++) {
        printf("| [%s] | `%s` | `%s` | %s | %s | ", k->section, k->name, k->default_value,
               k->runtime ? "yes" : "no", k->reload ? "yes" : "restart");
        for (const char *c = k->help; *c; c++) {
            if (*c == '|') {
                putchar('\\'); /* a literal bar inside a Markdown table cell */
            }
            putchar(*c);
        }
        printf(" |\n");
    }
}

static const char *parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"config-reference", no_argument, NULL, 'R'},
                                             {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("pgdual %s\n", PGDUAL_VERSION);
            exit(0);
        case 'R':
            print_config_reference();
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        exit(2);
    }
    return path;
}

/* The main thread's loop: signals, the drain deadline, and the workers' exit notices. */
struct main_loop {
    struct server *srv;
    uv_loop_t loop;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t drain_timer; /* shutdown_timeout_ms after SIGTERM */
    uv_async_t worker_exited;
    bool draining;
};

static void on_sigint(uv_signal_t *h, int signum)
{
    struct main_loop *m = h->data;
    (void)signum;
    LOG_INFO("received SIGINT: stopping now");
    for (int i = 0; i < m->srv->nworkers; i++) {
        worker_post_stop(&m->srv->workers[i]);
    }
    uv_stop(h->loop);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct main_loop *m = t->data;
    LOG_INFO("shutdown_timeout_ms expired: closing the sessions still in a transaction");
    for (int i = 0; i < m->srv->nworkers; i++) {
        worker_post_stop(&m->srv->workers[i]);
    }
}

static void on_sigterm(uv_signal_t *h, int signum)
{
    struct main_loop *m = h->data;
    (void)signum;
    if (m->draining) {
        LOG_INFO("received SIGTERM again: already draining (SIGINT stops at once)");
        return;
    }
    m->draining = true;
    struct server_conf *conf = server_conf_get(m->srv);
    int ms = conf->cfg.shutdown_timeout_ms;
    server_conf_unref(conf);
    LOG_INFO("received SIGTERM: draining: no new connections; open transactions have %d ms "
             "(shutdown_timeout_ms) to finish",
             ms);
    for (int i = 0; i < m->srv->nworkers; i++) {
        worker_post_drain(&m->srv->workers[i]);
    }
    uv_timer_start(&m->drain_timer, on_drain_timeout, (uint64_t)ms, 0);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    struct main_loop *m = h->data;
    (void)signum;
    LOG_INFO("received SIGHUP: reloading %s", m->srv->config_path);
    char err[1024];
    if (reload_run(m->srv, NULL, err, sizeof(err)) < 0) {
        return; /* reload_run logged why; the running config stays */
    }
}

static void on_worker_exited(uv_async_t *h)
{
    struct main_loop *m = h->data;
    if (atomic_load(&m->srv->workers_exited) == m->srv->nworkers) {
        uv_stop(&m->loop); /* every worker finished (a drain completed, or a stop) */
    }
}

static int server_start_workers(struct server *srv)
{
    srv->workers = calloc((size_t)srv->nworkers, sizeof(*srv->workers));
    if (!srv->workers) {
        return -1;
    }
    int port = srv->cfg->listen_port;
    for (int i = 0; i < srv->nworkers; i++) {
        int rc = worker_init(&srv->workers[i], srv, i, port);
        if (rc < 0) {
            LOG_ERR("cannot listen on %s:%d: %s", srv->cfg->listen_addr, port, uv_strerror(rc));
            return -1;
        }
        port = worker_bound_port(&srv->workers[i]);
    }
    srv->listen_port = port;
    for (int i = 0; i < srv->nworkers; i++) {
        if (worker_start(&srv->workers[i]) < 0) {
            LOG_ERR("cannot start worker thread %d", i);
            return -1;
        }
    }
    /* Printed at every log level: scripts wait for this line to learn the port. */
    fprintf(stderr, "pgdual: listening on %s:%d (%d workers)\n", srv->cfg->listen_addr, port,
            srv->nworkers);
    return 0;
}

/* Split read_only_functions at commas into srv's array (owned by srv). */
static int split_read_only_functions(struct server *srv, const char *list)
{
    size_t cap = 1;
    for (const char *p = list; *p; p++) {
        cap += *p == ',';
    }
    srv->read_only_functions = calloc(cap, sizeof(char *));
    if (!srv->read_only_functions) {
        return -1;
    }
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, " ,");
        if (n > 0) {
            char *name = strndup(p, n);
            if (!name) {
                return -1;
            }
            srv->read_only_functions[srv->n_read_only_functions++] = name;
        }
        p += n;
    }
    return 0;
}

/* The first config snapshot: a copy of the startup config with its auth table. */
static int server_init_conf(struct server *srv, const struct config *cfg)
{
    struct auth_table *auth = NULL;
    if (config_needs_auth_file(cfg)) {
        char err[512];
        if (auth_table_load(cfg->auth_file, &auth, err, sizeof(err)) < 0) {
            LOG_ERR("auth_file: %s", err);
            return -1;
        }
    }
    SSL_CTX *tls = NULL;
    char terr[512];
    if (tls_ctx_load(cfg, &tls, terr, sizeof(terr)) < 0) {
        auth_table_free(auth);
        LOG_ERR("%s", terr);
        return -1;
    }
    if (!auth && !cfg->admin_auth_trust) {
        LOG_WARN("no auth_file: the admin console (database pgdual) cannot be logged into; its "
                 "users need a password from auth_file (or admin_auth_trust = on)");
    }
    struct config copy;
    if (config_copy(&copy, cfg) < 0) {
        auth_table_free(auth);
        SSL_CTX_free(tls);
        LOG_ERR("out of memory");
        return -1;
    }
    srv->conf = server_conf_new(&copy, auth, tls);
    if (!srv->conf) {
        LOG_ERR("out of memory");
        return -1;
    }
    return 0;
}

static int server_init(struct server *srv, struct config *cfg, const char *path,
                       const struct dials *file_dials)
{
    memset(srv, 0, sizeof(*srv));
    srv->divergence_fd = -1;
    srv->cfg = cfg;
    srv->config_path = path;
    srv->nworkers = cfg->workers;
    atomic_init(&srv->next_session_id, 1);
    atomic_init(&srv->clients_now, 0);
    atomic_init(&srv->reserved_now, 0);
    atomic_init(&srv->pinned_gen, 1); /* see server.h */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srv->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pthread_mutex_init(&srv->dials_lock, NULL);
    pthread_mutex_init(&srv->conf_lock, NULL);
    pthread_mutex_init(&srv->reload_lock, NULL);
    atomic_init(&srv->workers_exited, 0);
    srv->dials = cfg->dials;
    srv->file_dials = *file_dials;
    srv->dials_version = 1;
    srv->dials_snapshot = dials_snapshot_new(&srv->dials, srv->dials_version);
    srv->cancels = cancel_registry_new();
    srv->divergences = divergence_table_new(DIVERGENCE_TABLE_GROUPS);
    srv->pin_shared = pin_shared_new(); /* NULL: every session looks tables up itself */
    atomic_init(&srv->switch_pending, false);
    srv->seqsync = seqsync_new(srv, srv->dials.primary);
    if (!srv->dials_snapshot || !srv->cancels || !srv->divergences || !srv->seqsync ||
        split_read_only_functions(srv, cfg->read_only_functions) < 0) {
        LOG_ERR("out of memory");
        return -1;
    }
    srv->divergence_fd = -1;
    if (cfg->divergence_log[0]) {
        srv->divergence_fd =
            open(cfg->divergence_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (srv->divergence_fd < 0) {
            LOG_ERR("divergence_log %s: %s", cfg->divergence_log, strerror(errno));
            return -1;
        }
    }
    return server_init_conf(srv, cfg);
}

static void server_cleanup(struct server *srv)
{
    for (size_t i = 0; i < srv->n_read_only_functions; i++) {
        free(srv->read_only_functions[i]);
    }
    free(srv->read_only_functions);
    free(srv->workers);
    if (srv->divergence_fd >= 0) {
        close(srv->divergence_fd);
    }
    seqsync_free(srv->seqsync); /* its thread ended in run() */
    server_conf_unref(srv->conf);
    cancel_registry_free(srv->cancels);
    divergence_table_free(srv->divergences);
    pin_shared_free(srv->pin_shared);
    dials_snapshot_unref(srv->dials_snapshot);
    pthread_mutex_destroy(&srv->dials_lock);
    pthread_mutex_destroy(&srv->conf_lock);
    pthread_mutex_destroy(&srv->reload_lock);
}

static int run(struct server *srv)
{
    struct main_loop m;
    memset(&m, 0, sizeof(m));
    m.srv = srv;
    if (uv_loop_init(&m.loop) < 0) {
        return 1;
    }
    m.loop.data = &m;
    uv_signal_init(&m.loop, &m.sigint);
    uv_signal_init(&m.loop, &m.sigterm);
    uv_signal_init(&m.loop, &m.sighup);
    uv_timer_init(&m.loop, &m.drain_timer);
    uv_async_init(&m.loop, &m.worker_exited, on_worker_exited);
    m.sigint.data = m.sigterm.data = m.sighup.data = m.drain_timer.data = &m;
    m.worker_exited.data = &m;
    srv->worker_exited = &m.worker_exited;
    uv_signal_start(&m.sigint, on_sigint, SIGINT);
    uv_signal_start(&m.sigterm, on_sigterm, SIGTERM);
    uv_signal_start(&m.sighup, on_sighup, SIGHUP);
    struct metrics *metrics = NULL; /* reads the workers' counters: lives inside their lifetime */
    int status = 0;
    if (seqsync_start(srv->seqsync) < 0) {
        LOG_ERR("cannot start the sequence sync thread");
        status = 1;
    }
    if (status == 0 && server_start_workers(srv) < 0) {
        status = 1;
    }
    if (status == 0 && metrics_start(srv, &metrics) < 0) {
        status = 1;
    }
    if (status == 0 && reconcile_auto_start(srv, srv->config_path, &srv->reconcile_auto) < 0) {
        LOG_ERR("cannot start the catch-up thread");
        status = 1;
    }
    if (status == 0) {
        uv_run(&m.loop, UV_RUN_DEFAULT);
    }
    /* Before the workers: it reads the dials and the sessions' gauge. */
    struct reconcile_auto *ra = srv->reconcile_auto;
    pthread_mutex_lock(&srv->dials_lock);
    srv->reconcile_auto = NULL; /* reconcile_auto_kill from a worker finds none from now */
    pthread_mutex_unlock(&srv->dials_lock);
    reconcile_auto_stop(ra);
    metrics_stop(metrics);
    /* Before the workers are joined: it reads their counters and posts to their mailboxes (a
     * switch still waiting for its gate is finished if the gate opens within a few seconds). */
    seqsync_stop(srv->seqsync);
    for (int i = 0; i < srv->nworkers && srv->workers; i++) {
        if (srv->workers[i].thread) {
            worker_post_stop(&srv->workers[i]);
            worker_join(&srv->workers[i]);
        }
    }
    srv->worker_exited = NULL; /* every worker thread has ended: nothing sends it any more */
    uv_handle_t *handles[] = {(uv_handle_t *)&m.sigint, (uv_handle_t *)&m.sigterm,
                              (uv_handle_t *)&m.sighup, (uv_handle_t *)&m.drain_timer,
                              (uv_handle_t *)&m.worker_exited};
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        uv_close(handles[i], NULL);
    }
    uv_run(&m.loop, UV_RUN_DEFAULT);
    uv_loop_close(&m.loop);
    return status;
}

/* The dials come from the state file when it exists, else from the config file; a state file
 * that cannot be trusted stops pgdual (starting from the config would silently undo a
 * rollback). */
static int load_state(struct config *cfg, struct state_secondary *sec)
{
    if (!cfg->state_file[0]) {
        return 0; /* state_file = "": dials are not persisted */
    }
    char err[1024];
    int rc = state_load(cfg->state_file, &cfg->dials, sec, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "pgdual: %s; fix or remove it (then the config file's dials apply)\n", err);
        return -1;
    }
    if (sec->name[0] && sync_state_parse(sec->name) < 0) {
        fprintf(stderr, "pgdual: state file %s: unknown secondary_state \"%s\"\n", cfg->state_file,
                sec->name);
        return -1;
    }
    if (rc == 1) {
        LOG_INFO("dials taken from the state file %s", cfg->state_file);
    }
    if (sec->name[0] && sync_state_parse(sec->name) != SYNC_in_sync) {
        LOG_WARN("state file %s: the secondary is %s (since %lld ms after the epoch): no read is "
                 "routed to it until a reconciliation finds it equal",
                 cfg->state_file, sec->name, (long long)sec->since_ms);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct config cfg;
    config_init_defaults(&cfg);
    char err[1024];
    if (config_load(&cfg, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "pgdual: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    log_set_level((enum log_level)cfg.log_level);
    struct dials file_dials = cfg.dials;
    struct state_secondary sec = {.name = ""};
    if (load_state(&cfg, &sec) < 0) {
        config_free(&cfg);
        return 1;
    }
    struct server srv;
    int status = 1;
    if (server_init(&srv, &cfg, path, &file_dials) == 0) {
        server_secondary_restore(&srv, &sec);
        status = run(&srv);
    }
    server_cleanup(&srv);
    config_free(&cfg);
    LOG_INFO("pgdual stopped");
    return status;
}
