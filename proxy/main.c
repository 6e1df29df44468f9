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

#include <uv.h>

#include "proxy/auth.h"
#include "proxy/cancel.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "proxy/worker.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pgdual -c FILE\n"
                 "  -c, --config FILE  the pgdual.ini config file\n"
                 "  -h, --help         this text\n"
                 "  -V, --version      print the version\n"
                 "      --config-reference  print every config key as a Markdown table\n"
                 "PostgreSQL proxy that mirrors writes to two databases (old and new) for\n"
                 "zero-loss migrations. SIGTERM stops gracefully, SIGINT at once.\n");
}

/* The README's configuration reference comes from the same table the parser reads. */
static void print_config_reference(void)
{
    printf("| section | key | default | runtime (SET) | meaning |\n|---|---|---|---|---|\n");
    for (const struct config_key *k = config_keys; k->name; k++) {
        printf("| [%s] | `%s` | `%s` | %s | ", k->section, k->name, k->default_value,
               k->runtime ? "yes" : "no");
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

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;
    LOG_INFO("received %s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    for (int i = 0; i < srv->nworkers; i++) {
        worker_post_stop(&srv->workers[i]);
    }
    uv_stop(h->loop);
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

static int server_init(struct server *srv, struct config *cfg)
{
    memset(srv, 0, sizeof(*srv));
    srv->divergence_fd = -1;
    srv->cfg = cfg;
    srv->nworkers = cfg->workers;
    atomic_init(&srv->next_session_id, 1);
    atomic_init(&srv->clients_now, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srv->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pthread_mutex_init(&srv->dials_lock, NULL);
    srv->dials = cfg->dials;
    srv->dials_version = 1;
    srv->dials_snapshot = dials_snapshot_new(&srv->dials, srv->dials_version);
    srv->cancels = cancel_registry_new();
    if (!srv->dials_snapshot || !srv->cancels ||
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
    if (cfg->auth_type == AUTH_SCRAM) {
        char err[512];
        if (auth_table_load(cfg->auth_file, &srv->auth, err, sizeof(err)) < 0) {
            LOG_ERR("auth_file: %s", err);
            return -1;
        }
    }
    return 0;
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
    auth_table_free(srv->auth);
    cancel_registry_free(srv->cancels);
    dials_snapshot_unref(srv->dials_snapshot);
    pthread_mutex_destroy(&srv->dials_lock);
}

static int run(struct server *srv)
{
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    if (uv_loop_init(&loop) < 0) {
        return 1;
    }
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    sigint.data = sigterm.data = srv;
    uv_signal_start(&sigint, on_stop_signal, SIGINT);
    uv_signal_start(&sigterm, on_stop_signal, SIGTERM);
    struct metrics *metrics = NULL; /* reads the workers' counters: lives inside their lifetime */
    int status = server_start_workers(srv) < 0 ? 1 : 0;
    if (status == 0 && metrics_start(srv, &metrics) < 0) {
        status = 1;
    }
    if (status == 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    metrics_stop(metrics);
    for (int i = 0; i < srv->nworkers && srv->workers; i++) {
        if (srv->workers[i].thread) {
            worker_post_stop(&srv->workers[i]);
            worker_join(&srv->workers[i]);
        }
    }
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return status;
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
    struct server srv;
    int status = server_init(&srv, &cfg) < 0 ? 1 : run(&srv);
    server_cleanup(&srv);
    config_free(&cfg);
    LOG_INFO("pgdual stopped");
    return status;
}
