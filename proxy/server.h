/* proxy/server.h: what the worker loops share: the config, the auth table, the master copy of
 * the dials, the cancel registry and the client count. Everything here is either immutable while
 * the workers run or guarded as its comment says; nothing here is touched per message. */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"
#include "config/dials.h"

/* X(name): the SHOW STATUS values of secondary_state. */
#define SECONDARY_STATES(X) X(in_sync) X(lagging) X(catching_up)
enum secondary_state {
#define X(n) SECONDARY_##n,
    SECONDARY_STATES(X)
#undef X
};

struct worker;
struct cancel_registry;
struct auth_table;

struct server {
    struct config *cfg;      /* immutable while workers run */
    struct auth_table *auth; /* immutable while workers run; NULL with auth_type = trust */
    struct worker *workers;
    int nworkers;
    struct cancel_registry *cancels;
    atomic_uint next_session_id;
    atomic_int clients_now;     /* sessions holding a max_client_conn slot */
    int listen_port;            /* the bound port (listen_port = 0 resolves here) */
    char **read_only_functions; /* from [pgdual] read_only_functions, split at commas */
    size_t n_read_only_functions;
    int divergence_fd;          /* the divergence log, opened O_APPEND; -1 = none */
    atomic_int secondary_state; /* enum secondary_state; leaves in_sync at the first loss */
    int64_t started_ms;

    pthread_mutex_t dials_lock; /* guards the three fields below (admin path only) */
    struct dials dials;         /* master copy: what SHOW STATUS reports */
    uint64_t dials_version;
    struct dials_snapshot *dials_snapshot; /* the last one published */
};

/* Take a reference on the current dials snapshot (any thread). */
struct dials_snapshot *server_dials_get(struct server *srv);
/* Validate and apply one runtime dial change; publish it to every worker. */
int server_set_dial(struct server *srv, const char *key, const char *value, char *err,
                    size_t errlen) __attribute__((warn_unused_result));
/* ROLLBACK CUTOVER: primary = old and read_new_percent = 0 in one published change. */
int server_rollback_cutover(struct server *srv, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* A session lost the secondary: the secondary misses writes from now on. */
void server_secondary_lagging(struct server *srv);
const char *server_secondary_state_name(const struct server *srv);
/* Sum one counter over every worker. */
uint64_t server_stat_sum(const struct server *srv, int counter);
/* Sum backend's (enum dial_backend) latency histogram over every worker: per-bucket counts (not
 * cumulative; STATS_LATENCY_BUCKETS of them, the last is +Inf) and the sum in microseconds. */
void server_latency_sum(const struct server *srv, int backend, uint64_t *buckets, uint64_t *sum_us);
