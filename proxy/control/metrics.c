/* proxy/control/metrics.c: renders /metrics and /status, and serves them with libmicrohttpd. */
#include "proxy/control/metrics.h"

#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <uv.h>

#include "config/dials.h"
#include "proxy/control/status.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/stats.h"
#include "proxy/text.h"

#define METRICS_SAMPLES_MAX    5
#define METRICS_CONTENT_TYPE   "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_JSON_TYPE      "application/json"
#define METRICS_LATENCY_FAMILY "pgdual_statement_duration_seconds"

/* One HTTP connection, on the daemon's list from the oldest activity to the newest. */
struct metrics_conn {
    struct metrics_conn *prev, *next;
    int fd;       /* MHD's socket: shut down (never closed) to evict the connection */
    bool busy;    /* a request is being answered */
    bool evicted; /* shut down and off the list; MHD's close notice frees it */
};

/* Everything below `daemon` is touched only on MHD's one internal polling thread (its
 * callbacks), so it needs no lock. */
struct metrics {
    struct MHD_Daemon *daemon;
    struct server *srv; /* borrowed: outlives the daemon */
    struct metrics_conn *oldest, *newest;
    int nconn;    /* connections on the list */
    int max_conn; /* metrics_max_conn */
};

/* One sample of a family whose values are worker counters: its label set (already formatted,
 * "" for none) and the counter. */
struct metrics_sample {
    const char *labels;
    enum stats_counter stat;
};

/* A family rendered straight from counters; samples end at the first NULL labels. */
struct metrics_family {
    const char *name;
    const char *type;
    const char *help;
    struct metrics_sample samples[METRICS_SAMPLES_MAX + 1];
};

#define ONE(stat)           \
    {                       \
        {                   \
            "", STAT_##stat \
        }                   \
    }

/* Every counter of proxy/stats.h appears here, except divergences_total, which is the sum of
 * the four compared kinds of pgdual_divergences_total. */
static const struct metrics_family metrics_counter_families[] = {
    {"pgdual_clients_total", "counter", "Client connections accepted.", ONE(clients_total)},
    {"pgdual_sessions_active", "gauge", "Client sessions open now.", ONE(sessions_active)},
    {"pgdual_statements_total", "counter",
     "Statements received from clients (Query and Execute messages).", ONE(statements_total)},
    {"pgdual_classifications_total", "counter",
     "Statement texts classified (cache hits included); relay mode skips plain statements.",
     ONE(classifications_total)},
    {"pgdual_statements_served_total",
     "counter",
     "Statements (units: a simple Query, or an extended batch up to Sync) completed by the "
     "backend whose reply the client got, by class: read = routed read, mirrored = write or "
     "session-state change.",
     {{"class=\"read\",backend=\"old\"", STAT_reads_served_old},
      {"class=\"read\",backend=\"new\"", STAT_reads_served_new},
      {"class=\"mirrored\",backend=\"old\"", STAT_mirrored_served_old},
      {"class=\"mirrored\",backend=\"new\"", STAT_mirrored_served_new}}},
    {"pgdual_writes_mirrored_total", "counter",
     "Mirrored statements (units) sent to the secondary.", ONE(writes_mirrored)},
    {"pgdual_fallbacks_total",
     "counter",
     "Routed reads served by the secondary re-run on the primary, by reason.",
     {{"reason=\"error\"", STAT_fallbacks_error},
      {"reason=\"timeout\"", STAT_fallbacks_timeout},
      {"reason=\"connection_lost\"", STAT_fallbacks_connection_lost}}},
    {"pgdual_read_errors_after_stream_total", "counter",
     "Reads served by the secondary that failed after part of the answer reached the client.",
     ONE(read_errors_after_stream_total)},
    {"pgdual_shadow_compares_total", "counter", "Shadow comparisons completed.",
     ONE(shadow_compares_total)},
    {"pgdual_shadows_skipped_total", "counter",
     "Reads drawn for shadowing served by the primary alone while the secondary was busy.",
     ONE(shadows_skipped_total)},
    {"pgdual_shadow_not_comparable_total", "counter",
     "Reads drawn for shadowing but nondeterministic (now(), random() ...): not compared.",
     ONE(shadow_not_comparable_total)},
    {"pgdual_compares_partial_total", "counter",
     "Comparisons (mirrored writes and shadowed reads) that left out a SQLSTATE, command tag or "
     "row shape because a reply message was too long to read whole.",
     ONE(compares_partial_total)},
    {"pgdual_shadow_timeouts_total", "counter", "Shadow reads cancelled after shadow_timeout_ms.",
     ONE(shadow_timeouts_total)},
    {"pgdual_divergences_total",
     "counter",
     "Divergences between old and new by kind; nondeterministic counts writes that made up "
     "values (now(), random(), ids ...) pgdual could not pin for the secondary.",
     {{"kind=\"error_mismatch\"", STAT_divergences_error_mismatch},
      {"kind=\"sqlstate_mismatch\"", STAT_divergences_sqlstate_mismatch},
      {"kind=\"tag_mismatch\"", STAT_divergences_tag_mismatch},
      {"kind=\"result_mismatch\"", STAT_divergences_result_mismatch},
      {"kind=\"nondeterministic\"", STAT_nondeterministic_writes_total}}},
    {"pgdual_pinned_writes_total", "counter",
     "Writes the secondary ran with the values the primary made up (deterministic writes).",
     ONE(pinned_writes_total)},
    {"pgdual_cancels_total", "counter", "Cancel requests forwarded.", ONE(cancels_total)},
    {"pgdual_protocol_errors_total", "counter", "Clients closed for protocol violations.",
     ONE(protocol_errors_total)},
    {"pgdual_accept_backoffs_total", "counter",
     "Times accept ran out of file descriptors and the listener rested 100 ms.",
     ONE(accept_backoffs_total)},
    {"pgdual_auth_failures_total", "counter", "Failed client logins.", ONE(auth_failures_total)},
    {"pgdual_tls_clients_total", "counter", "Client connections that completed a TLS handshake.",
     ONE(tls_clients_total)},
    {"pgdual_tls_handshake_failures_total", "counter", "Client TLS handshakes that failed.",
     ONE(tls_handshake_failures_total)},
    {"pgdual_backend_failures_total", "counter", "Backend connections failed or lost.",
     ONE(backend_failures_total)},
    {"pgdual_secondary_failures_total", "counter",
     "Sessions that lost the secondary and went on alone.", ONE(secondary_failures_total)},
    {"pgdual_secondary_reconnects_total", "counter",
     "Sessions that logged in to their secondary again after losing it.",
     ONE(secondary_reconnects_total)},
    {"pgdual_seed_skipped_total", "counter",
     "While seeding: mirrored writes new applied to fewer rows than old (rows not copied yet).",
     ONE(seed_skipped_total)},
    {"pgdual_client_received_bytes_total", "counter", "Bytes received from clients.",
     ONE(bytes_from_clients)},
    {"pgdual_client_sent_bytes_total", "counter", "Bytes sent to clients.", ONE(bytes_to_clients)},
};

static const char *const metrics_backends[2] = {"old", "new"}; /* by enum dial_backend */

static void put_header(struct wbuf *b, const char *name, const char *type, const char *help)
{
    text_put_fmt(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_sample(struct wbuf *b, const char *name, const char *labels, uint64_t v)
{
    if (labels[0]) {
        text_put_fmt(b, "%s{%s} %" PRIu64 "\n", name, labels, v);
    } else {
        text_put_fmt(b, "%s %" PRIu64 "\n", name, v);
    }
}

static void render_counter_families(struct server *srv, struct wbuf *b)
{
    size_t n = sizeof(metrics_counter_families) / sizeof(metrics_counter_families[0]);
    for (size_t i = 0; i < n; i++) {
        const struct metrics_family *f = &metrics_counter_families[i];
        put_header(b, f->name, f->type, f->help);
        for (const struct metrics_sample *s = f->samples; s->labels; s++) {
            put_sample(b, f->name, s->labels, server_stat_sum(srv, s->stat));
        }
    }
}

static void render_latency(struct server *srv, struct wbuf *b)
{
    const char *name = METRICS_LATENCY_FAMILY;
    put_header(b, name, "histogram",
               "Time from a unit's first message to its ReadyForQuery, per backend (the "
               "secondary's from when the unit was sent to it).");
    for (int be = 0; be < 2; be++) {
        uint64_t buckets[STATS_LATENCY_BUCKETS], sum_us, cum = 0;
        server_latency_sum(srv, be, buckets, &sum_us);
        for (int i = 0; i < STATS_LATENCY_BUCKETS; i++) {
            cum += buckets[i];
            if (i < STATS_LATENCY_BOUNDS) {
                text_put_fmt(b, "%s_bucket{backend=\"%s\",le=\"%g\"} %" PRIu64 "\n", name,
                             metrics_backends[be], (double)stats_latency_bounds_us[i] / 1e6, cum);
            } else {
                text_put_fmt(b, "%s_bucket{backend=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name,
                             metrics_backends[be], cum);
            }
        }
        text_put_fmt(b, "%s_sum{backend=\"%s\"} %.6f\n", name, metrics_backends[be],
                     (double)sum_us / 1e6);
        text_put_fmt(b, "%s_count{backend=\"%s\"} %" PRIu64 "\n", name, metrics_backends[be], cum);
    }
}

static void render_state(struct server *srv, struct wbuf *b)
{
    static const char *const states[] = {
#define X(n) #n,
        SYNC_STATES(X)
#undef X
    };
    const char *now = server_secondary_state_name(srv);
    put_header(b, "pgdual_secondary_state", "gauge",
               "The secondary's state: 1 for the current one, 0 for the others.");
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        text_put_fmt(b, "pgdual_secondary_state{state=\"%s\"} %d\n", states[i],
                     strcmp(states[i], now) == 0);
    }
    put_header(b, "pgdual_secondary_lag_units", "gauge",
               "Mirrored units sent to the secondary and not finished there, over all sessions.");
    put_sample(b, "pgdual_secondary_lag_units", "", (uint64_t)server_lag_units(srv));
    put_header(b, "pgdual_secondary_state_since_seconds", "gauge",
               "Unix time when the secondary entered its state (0 = never left in_sync).");
    text_put_fmt(b, "pgdual_secondary_state_since_seconds %.3f\n",
                 (double)atomic_load(&srv->secondary_since_ms) / 1000.0);
    char list[STATE_RECONCILE_MAX];
    server_reconcile_list(srv, list, sizeof(list));
    uint64_t pending = 0;
    if (strcmp(list, "*") != 0 && list[0]) {
        for (const char *p = list; *p; p++) {
            pending += p == list || p[-1] == ',';
        }
    }
    bool all = strcmp(list, "*") == 0;
    put_header(b, "pgdual_reconcile_tables_pending", "gauge",
               "Tables named on the reconciliation list (see pgdual_reconcile_all_tables).");
    put_sample(b, "pgdual_reconcile_tables_pending", "", all ? 0 : pending);
    put_header(b, "pgdual_reconcile_all_tables", "gauge",
               "1 when the next reconciliation must cover every table.");
    put_sample(b, "pgdual_reconcile_all_tables", "", all ? 1 : 0);
    struct reconcile_pass rec;
    reconcile_get(srv, &rec);
    put_header(b, "pgdual_reconcile_pass", "gauge", "The running reconciliation pass id (0 none).");
    put_sample(b, "pgdual_reconcile_pass", "", rec.pass);
    put_header(b, "pgdual_reconcile_passes_total", "counter", "Reconciliation passes begun.");
    put_sample(b, "pgdual_reconcile_passes_total", "", rec.passes_total);
    put_header(b, "pgdual_reconcile_tables_done", "gauge", "Tables the running pass has done.");
    put_sample(b, "pgdual_reconcile_tables_done", "", rec.tables_done);
    put_header(b, "pgdual_reconcile_tables_total", "gauge", "Tables the running pass covers.");
    put_sample(b, "pgdual_reconcile_tables_total", "", rec.tables_total);
    put_header(b, "pgdual_reconcile_rows_repaired", "gauge", "Rows the running pass repaired.");
    put_sample(b, "pgdual_reconcile_rows_repaired", "", rec.rows_repaired);
    put_header(b, "pgdual_reconcile_last_result", "gauge",
               "The last pass's outcome: 1 for it, 0 for the others.");
    static const char *const results[] = {
#define X(n) #n,
        RECONCILE_RESULTS(X)
#undef X
    };
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
        text_put_fmt(b, "pgdual_reconcile_last_result{result=\"%s\"} %d\n", results[i],
                     (int)i == (int)rec.last);
    }
    int without = atomic_load(&srv->sessions_without_secondary);
    put_header(b, "pgdual_sessions_without_secondary", "gauge",
               "Sessions relaying without their secondary (their writes miss it).");
    put_sample(b, "pgdual_sessions_without_secondary", "", (uint64_t)(without > 0 ? without : 0));
    put_header(b, "pgdual_journal_pending", "gauge",
               "Writes journaled for the secondary and not replayed: no journal yet, always 0.");
    put_sample(b, "pgdual_journal_pending", "", 0);
}

static void render_dials(struct server *srv, struct wbuf *b)
{
    struct dials_snapshot *snap = server_dials_get(srv);
    const struct dials *d = &snap->d;
    put_header(b, "pgdual_primary", "gauge", "The primary backend: 1 for it, 0 for the other.");
    for (int be = 0; be < 2; be++) {
        text_put_fmt(b, "pgdual_primary{backend=\"%s\"} %d\n", metrics_backends[be],
                     d->primary == be);
    }
    put_header(b, "pgdual_read_new_percent", "gauge", "Dial: share of routed reads served by new.");
    put_sample(b, "pgdual_read_new_percent", "", (uint64_t)d->read_new_percent);
    put_header(b, "pgdual_compare_percent", "gauge", "Dial: share of routed reads shadowed.");
    put_sample(b, "pgdual_compare_percent", "", (uint64_t)d->compare_percent);
    put_header(b, "pgdual_mirror", "gauge", "Dial: 1 when writes are mirrored to the secondary.");
    put_sample(b, "pgdual_mirror", "", d->mirror ? 1 : 0);
    put_header(b, "pgdual_dials_version", "gauge", "Version of the dials, +1 per change.");
    put_sample(b, "pgdual_dials_version", "", snap->version);
    dials_snapshot_unref(snap);
}

void metrics_render_prometheus(struct server *srv, struct wbuf *out)
{
    render_counter_families(srv, out);
    render_latency(srv, out);
    render_state(srv, out);
    render_dials(srv, out);
}

struct status_json {
    struct wbuf *out;
    bool first;
};

/* status_row_fn: one "key": value member. */
static void put_status_member(void *ctx, const char *key, const char *value, bool numeric)
{
    struct status_json *j = ctx;
    wbuf_put_u8(j->out, j->first ? '{' : ',');
    j->first = false;
    text_put_json_str(j->out, key);
    wbuf_put_u8(j->out, ':');
    if (numeric) {
        wbuf_put_bytes(j->out, value, strlen(value));
    } else {
        text_put_json_str(j->out, value);
    }
}

void metrics_render_status(struct server *srv, struct wbuf *out)
{
    struct status_json j = {out, true};
    status_visit(srv, put_status_member, &j);
    wbuf_put_bytes(out, j.first ? "{}\n" : "}\n", j.first ? 3 : 2);
}

/* Queue a response whose body is b's bytes; the buffer passes to MHD, which frees it (b is
 * left empty either way). MHD_NO makes MHD close the connection. */
static enum MHD_Result reply_take(struct MHD_Connection *conn, unsigned int code,
                                  const char *content_type, struct wbuf *b)
{
    if (b->failed) { /* out of memory: closing the connection is the answer left */
        LOG_WARN("metrics: out of memory rendering a reply");
        wbuf_free(b);
        return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(b->len, b->data, free);
    if (!r) {
        wbuf_free(b);
        return MHD_NO;
    }
    wbuf_init(b); /* the bytes are MHD's now */
    enum MHD_Result rc = MHD_YES;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_NO ||
        (code == MHD_HTTP_METHOD_NOT_ALLOWED &&
         MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") == MHD_NO)) {
        rc = MHD_NO;
    }
    if (rc == MHD_YES) {
        rc = MHD_queue_response(conn, code, r);
    }
    MHD_destroy_response(r); /* the queued response keeps its own reference */
    return rc;
}

/* MHD_AccessHandlerCallback: runs on MHD's thread, once per request (bodies are not read). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct metrics *m = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) {
        ((struct metrics_conn *)ci->socket_context)->busy = true;
    }
    struct wbuf b;
    wbuf_init(&b);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        text_put_fmt(&b, "method %s not allowed: GET or HEAD\n", method);
        return reply_take(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", &b);
    }
    if (strcmp(url, "/metrics") == 0) {
        metrics_render_prometheus(m->srv, &b);
        return reply_take(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, &b);
    }
    if (strcmp(url, "/status") == 0) {
        metrics_render_status(m->srv, &b);
        return reply_take(conn, MHD_HTTP_OK, METRICS_JSON_TYPE, &b);
    }
    text_put_fmt(&b, "not found: try /metrics or /status\n");
    return reply_take(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", &b);
}

static void conn_unlink(struct metrics *m, struct metrics_conn *c)
{
    *(c->prev ? &c->prev->next : &m->oldest) = c->next;
    *(c->next ? &c->next->prev : &m->newest) = c->prev;
    c->prev = c->next = NULL;
    m->nconn--;
}

static void conn_append(struct metrics *m, struct metrics_conn *c)
{
    c->prev = m->newest;
    c->next = NULL;
    *(m->newest ? &m->newest->next : &m->oldest) = c;
    m->newest = c;
    m->nconn++;
}

/* Over metrics_max_conn: the connection idle the longest is shut down, so that idle sockets
 * (a client that connects and sends nothing) cannot keep the scraper out. */
static void conn_evict_idle(struct metrics *m, const struct metrics_conn *keep)
{
    for (struct metrics_conn *c = m->oldest; c && m->nconn > m->max_conn; c = c->next) {
        if (c == keep || c->busy) {
            continue;
        }
        conn_unlink(m, c);
        c->evicted = true;
        if (shutdown(c->fd, SHUT_RDWR) < 0) {
            LOG_WARN("metrics: shutdown of an idle connection failed");
        }
        return;
    }
}

/* MHD_OPTION_NOTIFY_CONNECTION: a connection opened or closed. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct metrics *m = cls;
    struct metrics_conn *c = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (c && !c->evicted) {
            conn_unlink(m, c);
        }
        free(c);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c = calloc(1, sizeof(*c));
    if (!c || !ci) {
        free(c); /* not tracked: it only runs into MHD's hard limit and timeout */
        return;
    }
    c->fd = ci->connect_fd;
    *socket_context = c;
    conn_append(m, c);
    conn_evict_idle(m, c);
}

/* MHD_OPTION_NOTIFY_COMPLETED: a request was answered; the connection is idle from now. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct metrics *m = cls;
    (void)req_cls;
    (void)code;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct metrics_conn *c = ci ? ci->socket_context : NULL;
    if (c && !c->evicted) {
        c->busy = false;
        conn_unlink(m, c); /* the newest activity now */
        conn_append(m, c);
    }
}

/* MHD_OPTION_EXTERNAL_LOGGER: MHD's own errors (bind failures and such) go to our log. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    LOG_WARN("metrics: %s", msg);
}

int metrics_start(struct server *srv, struct metrics **out)
{
    const char *addr = srv->cfg->metrics_addr;
    int port = srv->cfg->metrics_port;
    *out = NULL;
    if (port == 0) {
        return 0;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) < 0) {
        if (uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss) < 0) {
            LOG_ERR("metrics: metrics_addr %s is not an IP address", addr);
            return -1;
        }
        flags |= MHD_USE_IPv6;
    }
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        LOG_ERR("metrics: out of memory");
        return -1;
    }
    m->srv = srv;
    m->max_conn = srv->cfg->metrics_max_conn;
    unsigned int timeout_s = (unsigned int)(srv->cfg->metrics_idle_timeout_ms + 999) / 1000;
    /* The logger comes first so that MHD's messages about later options reach it. MHD's own
     * limit is one above ours: the connection that goes over ours evicts the oldest idle one. */
    m->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, m,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned int)m->max_conn + 1, MHD_OPTION_CONNECTION_TIMEOUT,
                                 timeout_s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, m, MHD_OPTION_END);
    if (!m->daemon) {
        LOG_ERR("metrics: cannot serve on %s:%d (see the message above)", addr, port);
        free(m);
        return -1;
    }
    /* Printed at every log level, like the "listening on" line. */
    fprintf(stderr, "pgdual: metrics on http://%s:%d/metrics\n", addr, port);
    *out = m;
    return 0;
}

void metrics_stop(struct metrics *m)
{
    if (!m) {
        return;
    }
    MHD_stop_daemon(m->daemon);
    free(m);
}
