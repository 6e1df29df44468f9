/* proxy/control/admin.c: the admin console (database "pgdual"): a table of commands over simple
 * Query. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/dials.h"
#include "protocol/admin_parse.h"
#include "protocol/pqproto.h"
#include "proxy/clock.h"
#include "proxy/control/reconcile.h"
#include "proxy/control/reload.h"
#include "proxy/control/seqsync.h"
#include "proxy/control/status.h"
#include "proxy/dualwrite/divergence_table.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"
#include "proxy/text.h"
#include "proxy/worker.h"

#define ADMIN_MAX_QUERY (64 * 1024)

struct admin_cmd {
    const char *words[ADMIN_CMD_WORDS]; /* the command's leading keywords, upper case */
    void (*handler)(struct session *s, char **argv, int argc);
    const char *help;
    bool args; /* takes arguments after its keywords (the handler checks them); else none */
};

static void admin_error(struct session *s, const char *sqlstate, const char *msg)
{
    wire_put_error(&s->out, "ERROR", sqlstate, msg);
}

static void put_rows2(struct session *s, const char *c1, const char *c2)
{
    const char *names[2] = {c1, c2};
    wire_put_row_description(&s->out, 2, names);
}

static void put_kv(struct session *s, const char *k, const char *v)
{
    const char *vals[2] = {k, v};
    wire_put_data_row(&s->out, 2, vals);
}

/* status_row_fn: one SHOW STATUS row. */
static void put_status_row(void *ctx, const char *key, const char *value, bool numeric)
{
    (void)numeric;
    put_kv(ctx, key, value);
}

static void cmd_show_status(struct session *s, char **argv, int argc)
{
    (void)argv;
    (void)argc;
    put_rows2(s, "key", "value");
    status_visit(s->worker->server, put_status_row, s);
    wire_put_command_complete(&s->out, "SHOW");
}

static void cmd_show_config(struct session *s, char **argv, int argc)
{
    struct server *srv = s->worker->server;
    (void)argv;
    (void)argc;
    struct dials_snapshot *snap = server_dials_get(srv);
    struct server_conf *conf = server_conf_get(srv);
    struct config view = conf->cfg;
    view.dials = snap->d;
    const char *names[5] = {"key", "value", "default", "changeable", "section"};
    wire_put_row_description(&s->out, 5, names);
    for (const struct config_key *k = config_keys; k->name; k++) {
        char val[1024];
        config_format(&view, k, val, sizeof(val));
        const char *row[5] = {k->name, val, k->default_value, k->runtime ? "yes" : "no",
                              k->section};
        wire_put_data_row(&s->out, 5, row);
    }
    server_conf_unref(conf);
    dials_snapshot_unref(snap);
    wire_put_command_complete(&s->out, "SHOW");
}

/* divergence_group_fn: one SHOW DIVERGENCES row. */
static void put_divergence_row(void *ctx, const struct divergence_group *g)
{
    struct session *s = ctx;
    char fp[17], count[24], first[TEXT_TIME_MAX], last[TEXT_TIME_MAX];
    snprintf(fp, sizeof(fp), "%016" PRIx64, g->fingerprint);
    snprintf(count, sizeof(count), "%" PRIu64, g->count);
    text_utc_time(g->first_seen, first);
    text_utc_time(g->last_seen, last);
    const char *row[6] = {fp, g->kind, count, first, last, g->statement};
    wire_put_data_row(&s->out, 6, row);
}

static void cmd_show_divergences(struct session *s, char **argv, int argc)
{
    (void)argv;
    (void)argc;
    const char *names[6] = {"fingerprint", "kind", "count", "first_seen", "last_seen", "statement"};
    wire_put_row_description(&s->out, 6, names);
    struct divergence_table *t = s->worker->server->divergences;
    if (t) {
        divergence_table_visit(t, put_divergence_row, s);
    }
    wire_put_command_complete(&s->out, "SHOW");
}

/* The SQLSTATE for a failed dial change. */
static const char *set_error_code(int rc)
{
    switch (rc) {
    case -EINVAL:
        return "22023"; /* invalid_parameter_value */
    case -EPERM:
        return "55000"; /* object_not_in_prerequisite_state: the guard */
    case -EIO:
        return "58030"; /* io_error: the state file could not be written; nothing changed */
    default:
        return "XX000";
    }
}

/* After a command that may have moved the primary dial (switch_gen: the switch it started, or 0):
 * its CommandComplete now, or, when it did move it, once the switch's sequence sync is decided
 * (admin_switch_answer). */
static void admin_complete(struct session *s, uint64_t gen, const char *tag)
{
    if (gen == 0) {
        wire_put_command_complete(&s->out, tag);
        return;
    }
    s->admin_wait_switch = gen;
    s->admin_switch_tag = tag;
}

static void cmd_set(struct session *s, char **argv, int argc)
{
    /* SET key = value [FORCE] | SET key TO value [FORCE] */
    bool force = argc == 5 && strcasecmp(argv[4], "force") == 0;
    if ((argc != 4 && !force) || (strcmp(argv[2], "=") != 0 && strcasecmp(argv[2], "to") != 0)) {
        admin_error(s, "42601", "syntax: SET key = value [FORCE]");
        return;
    }
    struct server *srv = s->worker->server;
    uint64_t gen = 0;
    char err[512];
    int rc = server_set_dial(srv, argv[1], argv[3], force, &gen, err, sizeof(err));
    if (rc < 0) {
        admin_error(s, set_error_code(rc), err);
        return;
    }
    SLOG_INFO(s, "admin: SET %s = %s%s", argv[1], argv[3], force ? " FORCE" : "");
    s->admin_wait_version = server_dials_version(srv);
    admin_complete(s, gen, "SET");
}

static void cmd_rollback_cutover(struct session *s, char **argv, int argc)
{
    bool force = argc == 3 && strcasecmp(argv[2], "force") == 0;
    if (argc != 2 && !force) {
        admin_error(s, "42601", "syntax: ROLLBACK CUTOVER [FORCE]");
        return;
    }
    struct server *srv = s->worker->server;
    uint64_t gen = 0;
    char err[512];
    int rc = server_rollback_cutover(srv, force, &gen, err, sizeof(err));
    if (rc < 0) {
        admin_error(s, set_error_code(rc), err);
        return;
    }
    SLOG_INFO(s, "admin: ROLLBACK CUTOVER (primary = old, read_new_percent = 0)");
    s->admin_wait_version = server_dials_version(srv);
    admin_complete(s, gen, "ROLLBACK CUTOVER");
}

static void cmd_reload(struct session *s, char **argv, int argc)
{
    (void)argv;
    (void)argc;
    uint64_t gen = 0;
    char err[1024];
    if (reload_run(s->worker->server, &gen, err, sizeof(err)) < 0) {
        admin_error(s, "F0000", err); /* config_file_error */
        return;
    }
    SLOG_INFO(s, "admin: RELOAD");
    admin_complete(s, gen, "RELOAD");
}

static void cmd_pause(struct session *s, char **argv, int argc)
{
    (void)argv;
    (void)argc;
    server_set_paused(s->worker->server, true);
    SLOG_INFO(s, "admin: PAUSE (statements wait at transaction boundaries)");
    wire_put_command_complete(&s->out, "PAUSE");
}

static void cmd_resume(struct session *s, char **argv, int argc)
{
    (void)argv;
    (void)argc;
    server_set_paused(s->worker->server, false);
    SLOG_INFO(s, "admin: RESUME");
    wire_put_command_complete(&s->out, "RESUME");
}

static void cmd_seed(struct session *s, char **argv, int argc)
{
    (void)argv;
    if (argc != 1) {
        admin_error(s, "42601", "syntax: SEED");
        return;
    }
    const char *code;
    char err[512];
    if (reconcile_seed(s->worker->server, &code, err, sizeof(err)) < 0) {
        admin_error(s, code, err);
        return;
    }
    SLOG_INFO(s, "admin: SEED (secondary_state = seeding: the backfill fills new)");
    wire_put_command_complete(&s->out, "SEED");
}

/* A pass id or a count: a decimal number. */
static bool parse_u64(const char *w, uint64_t *out)
{
    char *end;
    if (!w || !isdigit((unsigned char)w[0])) {
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(w, &end, 10);
    *out = v;
    return errno == 0 && *end == '\0';
}

static void cmd_reconcile_start(struct session *s, char **argv, int argc)
{
    (void)argv;
    if (argc != 2) {
        admin_error(s, "42601", "syntax: RECONCILE START");
        return;
    }
    struct reconcile_start_row row;
    const char *code;
    char err[512];
    if (reconcile_start(s->worker->server, false, &row, &code, err, sizeof(err)) < 0) {
        admin_error(s, code, err);
        return;
    }
    SLOG_INFO(s, "admin: RECONCILE START: pass %" PRIu64, row.pass);
    const char *names[4] = {"pass", "primary", "from_state", "tables"};
    char pass[24];
    snprintf(pass, sizeof(pass), "%" PRIu64, row.pass);
    const char *vals[4] = {pass, row.primary == DIAL_NEW ? "new" : "old", row.from_state,
                           row.tables};
    wire_put_row_description(&s->out, 4, names);
    wire_put_data_row(&s->out, 4, vals);
    wire_put_command_complete(&s->out, "RECONCILE START 1");
}

static void cmd_reconcile_progress(struct session *s, char **argv, int argc)
{
    uint64_t pass, done, total, rows;
    if (argc != 6 || !parse_u64(argv[2], &pass) || !parse_u64(argv[3], &done) ||
        !parse_u64(argv[4], &total) || !parse_u64(argv[5], &rows)) {
        admin_error(s, "42601",
                    "syntax: RECONCILE PROGRESS <pass> <tables_done> <tables_total> "
                    "<rows_repaired>");
        return;
    }
    const char *code;
    char err[512];
    if (reconcile_progress(s->worker->server, pass, done, total, rows, &code, err, sizeof(err)) <
        0) {
        admin_error(s, code, err);
        return;
    }
    wire_put_command_complete(&s->out, "RECONCILE");
}

static void cmd_reconcile_done(struct session *s, char **argv, int argc)
{
    uint64_t pass;
    bool abort = strcasecmp(argv[1], "abort") == 0;
    if (argc != 3 || !parse_u64(argv[2], &pass)) {
        admin_error(s, "42601",
                    abort ? "syntax: RECONCILE ABORT <pass>" : "syntax: RECONCILE DONE <pass>");
        return;
    }
    const char *code;
    char err[512];
    struct server *srv = s->worker->server;
    int rc = abort ? reconcile_abort(srv, pass, RECONCILE_aborted, &code, err, sizeof(err))
                   : reconcile_done(srv, pass, &code, err, sizeof(err));
    if (rc < 0) {
        admin_error(s, code, err);
        return;
    }
    SLOG_INFO(s, "admin: RECONCILE %s %" PRIu64, abort ? "ABORT" : "DONE", pass);
    wire_put_command_complete(&s->out, "RECONCILE");
}

static void cmd_show_help(struct session *s, char **argv, int argc);

static const struct admin_cmd admin_cmds[] = {
    {{"SHOW", "STATUS", NULL}, cmd_show_status, "SHOW STATUS: dials, state and counters", false},
    {{"SHOW", "CONFIG", NULL},
     cmd_show_config,
     "SHOW CONFIG: every config key and its value",
     false},
    {{"SHOW", "DIVERGENCES", NULL},
     cmd_show_divergences,
     "SHOW DIVERGENCES: divergences since start, one row per statement fingerprint and kind, "
     "most recently seen first",
     false},
    {{"SHOW", "HELP", NULL}, cmd_show_help, "SHOW HELP: this list", false},
    {{"SET", NULL, NULL},
     cmd_set,
     "SET key = value [FORCE]: change a [cutover] dial, written to state_file before the answer; "
     "mirror = off while primary = old, and a primary switch while the secondary is not in_sync, "
     "need FORCE; a primary switch answers once the new primary's sequences are synced (if that "
     "fails, the switch is undone: ERROR 55000, unless FORCE)",
     true},
    {{"ROLLBACK", "CUTOVER", NULL},
     cmd_rollback_cutover,
     "ROLLBACK CUTOVER [FORCE]: primary = old and read_new_percent = 0, at once (switching "
     "back from new while old is not in_sync needs FORCE; old's sequences are synced first, as "
     "for SET primary)",
     true},
    {{"RELOAD", NULL, NULL},
     cmd_reload,
     "RELOAD: re-read the config file (as SIGHUP); a bad file is refused, the old one stays",
     false},
    {{"PAUSE", NULL, NULL},
     cmd_pause,
     "PAUSE: hold every session's next statement at its transaction boundary (transactions "
     "in flight finish)",
     false},
    {{"RESUME", NULL, NULL}, cmd_resume, "RESUME: release the statements PAUSE holds", false},
    {{"SEED", NULL, NULL},
     cmd_seed,
     "SEED: secondary_state = seeding (the backfill fills new; its missing rows are expected), "
     "every table on the reconciliation list",
     false},
    {{"RECONCILE", "START", NULL},
     cmd_reconcile_start,
     "RECONCILE START: begin a reconciliation pass (secondary_state = reconciling); one row: "
     "pass, primary, from_state, tables",
     true},
    {{"RECONCILE", "PROGRESS", NULL},
     cmd_reconcile_progress,
     "RECONCILE PROGRESS <pass> <tables_done> <tables_total> <rows_repaired>: the pass's "
     "progress for SHOW STATUS",
     true},
    {{"RECONCILE", "DONE", NULL},
     cmd_reconcile_done,
     "RECONCILE DONE <pass>: the pass found every table equal: in_sync, unless a miss made it "
     "stale (ERROR 55000: start a new pass)",
     true},
    {{"RECONCILE", "ABORT", NULL},
     cmd_reconcile_done,
     "RECONCILE ABORT <pass>: end the pass; secondary_state goes back to diverged",
     true},
};

#define ADMIN_NCMDS (sizeof(admin_cmds) / sizeof(admin_cmds[0]))

static void cmd_show_help(struct session *s, char **argv, int argc)
{
    (void)argv;
    (void)argc;
    const char *names[1] = {"command"};
    wire_put_row_description(&s->out, 1, names);
    for (size_t i = 0; i < ADMIN_NCMDS; i++) {
        const char *row[1] = {admin_cmds[i].help};
        wire_put_data_row(&s->out, 1, row);
    }
    wire_put_command_complete(&s->out, "SHOW");
}

/* Run c, matched on its nwords keywords: whole words only (a command without arguments takes
 * nothing more), and a stats_users login runs SHOW commands only. */
static void admin_dispatch(struct session *s, const struct admin_cmd *c, int nwords, char **argv,
                           int argc)
{
    if (!c->args && argc > nwords) {
        char msg[200];
        snprintf(msg, sizeof(msg), "syntax error at \"%.60s\": %.*s takes no arguments",
                 argv[nwords], (int)strcspn(c->help, ":"), c->help);
        admin_error(s, "42601", msg);
        return;
    }
    if (s->admin_readonly && strcmp(c->words[0], "SHOW") != 0) {
        admin_error(s, "42501",
                    "permission denied: stats_users may run SHOW commands only (admin_users "
                    "may change things)");
        return;
    }
    c->handler(s, argv, argc);
}

static void admin_run_one(struct session *s, char *text)
{
    char *argv[ADMIN_MAX_WORDS];
    int argc = admin_split(text, argv, ADMIN_MAX_WORDS);
    if (argc == 0) {
        return;
    }
    if (argc < 0) {
        admin_error(s, "42601", "cannot parse the admin command");
        return;
    }
    for (size_t i = 0; i < ADMIN_NCMDS; i++) {
        const struct admin_cmd *c = &admin_cmds[i];
        int w = admin_keywords_match(c->words, argv, argc);
        if (w >= 0) {
            admin_dispatch(s, c, w, argv, argc);
            return;
        }
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "unknown admin command \"%.60s\"; SHOW HELP lists them", argv[0]);
    admin_error(s, "42601", msg);
}

/* A dial change answers once every worker has taken it, so a statement any client starts after
 * the answer sees it (ROLLBACK CUTOVER: nothing that starts later is served by new). The loops
 * take it within microseconds; meanwhile the console is not read. A primary switch answers once
 * its sequence sync is decided (seqsync.h); if the sync has not even started after
 * ADMIN_SWITCH_GRACE_US (transactions still open on the old primary hold the gate), the answer
 * says so in a NOTICE and the outcome goes to the log and SHOW STATUS. */
#define ADMIN_APPLY_POLL_MS   1
#define ADMIN_APPLY_WAIT_US   (5 * 1000 * 1000)
#define ADMIN_SWITCH_GRACE_US (1000 * 1000)

static void admin_reply(struct session *s);

static bool admin_waiting(const struct session *s)
{
    return s->admin_wait_version != 0 || s->admin_wait_switch != 0;
}

/* Run the ';'-separated commands of text (modified). A command that moved the primary dial
 * stops the run: the commands after it wait in admin_rest for the switch's outcome. */
static void admin_run(struct session *s, char *text, bool any)
{
    char *save = text;
    for (char *part = admin_next_command(&save); part; part = admin_next_command(&save)) {
        size_t before = s->out.len;
        admin_run_one(s, part);
        any = any || s->out.len != before;
        if (s->admin_wait_switch) {
            s->admin_rest = strdup(save ? save : "");
            if (!s->admin_rest) {
                session_end(s, END_OUT_OF_MEMORY, "admin console");
                return;
            }
            admin_reply(s);
            return;
        }
    }
    if (!any) {
        wire_put_empty_query(&s->out);
    }
    wire_put_ready(&s->out, PQ_TXN_IDLE);
    admin_reply(s);
}

static void admin_flush(struct session *s)
{
    s->admin_wait_version = 0;
    if (session_flush_out(s) < 0) {
        return;
    }
    endpoint_want_read(&s->client, true);
    if (s->gate_rest.len > 0) { /* what the client sent after the change, not read yet */
        struct wbuf rest = s->gate_rest;
        wbuf_init(&s->gate_rest);
        admin_on_client_data(s, rest.data, rest.len);
        wbuf_free(&rest);
    }
}

/* The answer of the command that moved the primary dial, from its switch's outcome. */
static void admin_switch_answer(struct session *s, enum seqsync_outcome o, const char *why)
{
    char msg[1024];
    switch (o) {
    case SEQSYNC_failed:
        /* 55000: the switch's prerequisite (the new primary's sequences at least the old
         * one's) could not be established; the same code as the switch guard. */
        snprintf(msg, sizeof(msg),
                 "the primary did not change: raising the new primary's sequences to the old "
                 "primary's failed: %s; the switch was undone (end the command with FORCE to "
                 "switch without synced sequences)",
                 why);
        admin_error(s, "55000", msg);
        break;
    case SEQSYNC_forced:
        snprintf(msg, sizeof(msg),
                 "the sequence sync failed: %s; switched anyway (FORCE): ids the new primary "
                 "draws may collide with rows from the old one",
                 why);
        wire_put_notice(&s->out, "WARNING", "01000", msg);
        wire_put_command_complete(&s->out, s->admin_switch_tag);
        break;
    case SEQSYNC_waiting:
        wire_put_notice(&s->out, "NOTICE", "00000",
                        "the primary switch waits for transactions still open on the old "
                        "primary; no statement runs on the new one before its sequences are "
                        "synced (SHOW STATUS sequences_sync_result and the log tell the outcome)");
        wire_put_command_complete(&s->out, s->admin_switch_tag);
        break;
    case SEQSYNC_none:
    case SEQSYNC_running:
    case SEQSYNC_ok:
        wire_put_command_complete(&s->out, s->admin_switch_tag);
        break;
    }
    s->admin_wait_switch = 0;
}

/* Are the waits of the answer over? Writes the switch's answer when it is. */
static bool admin_wait_over(struct session *s)
{
    struct server *srv = s->worker->server;
    uint64_t waited = clock_monotonic_us() - s->admin_wait_since_us;
    if (s->admin_wait_version) {
        if (!server_dials_applied(srv, s->admin_wait_version)) {
            if (waited < ADMIN_APPLY_WAIT_US) {
                return false;
            }
            SLOG_INFO(s, "a worker has not taken the dial change after 5 s; answering anyway");
        }
        s->admin_wait_version = 0;
    }
    if (!s->admin_wait_switch) {
        return true;
    }
    char why[512];
    enum seqsync_outcome o = seqsync_outcome(srv->seqsync, s->admin_wait_switch, why, sizeof(why));
    if ((o == SEQSYNC_running || o == SEQSYNC_waiting) && s->timer_open &&
        (o == SEQSYNC_running || waited < ADMIN_SWITCH_GRACE_US)) {
        return false;
    }
    admin_switch_answer(s, o, why);
    return true;
}

/* The waits are over: run the commands that followed a switch, or send the answer. */
static void admin_resume(struct session *s)
{
    char *rest = s->admin_rest;
    s->admin_rest = NULL;
    if (rest) {
        admin_run(s, rest, true);
        free(rest);
        return;
    }
    admin_flush(s);
}

static void on_apply_poll(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->state != SESSION_ADMIN || !admin_waiting(s)) {
        uv_timer_stop(t);
        return;
    }
    if (admin_wait_over(s)) {
        uv_timer_stop(t);
        admin_resume(s);
    }
}

static void admin_reply(struct session *s)
{
    s->admin_wait_since_us = clock_monotonic_us();
    if (admin_waiting(s) && s->timer_open && !admin_wait_over(s)) {
        endpoint_want_read(&s->client, false);
        uv_timer_start(&s->timer, on_apply_poll, ADMIN_APPLY_POLL_MS, ADMIN_APPLY_POLL_MS);
        return;
    }
    if (admin_waiting(s)) { /* no timer to wait with: answer with what is known now */
        s->admin_wait_version = 0;
        (void)admin_wait_over(s);
    }
    admin_resume(s);
}

static void admin_query(struct session *s, char *sql, size_t len)
{
    if (len == 0 || sql[len - 1] != '\0') {
        session_end(s, END_PROTOCOL, "Query message without terminator");
        return;
    }
    admin_run(s, sql, false);
}

static int admin_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct session *s = ctx;
    (void)len;
    if (type != PqMsg_Query && type != PqMsg_Terminate) {
        return -1;
    }
    s->client_type = type;
    wbuf_reset(&s->client_msg);
    return 0;
}

static const struct wire_scan_ops admin_ops = {admin_begin, session_capture_body,
                                               session_capture_end};

void admin_on_client_data(struct session *s, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n && s->state == SESSION_ADMIN && !admin_waiting(s) && !s->admin_rest) {
        size_t used = 0;
        int rc = wire_scan_feed(&s->client_scan, p + off, n - off, &admin_ops, s, &used);
        off += used;
        if (rc < 0) {
            session_end(s, END_PROTOCOL, "the admin console takes simple Query messages only");
            return;
        }
        if (rc == 0) {
            return;
        }
        if (s->client_type == PqMsg_Terminate) {
            session_end(s, END_CLIENT_TERMINATE, NULL);
            return;
        }
        admin_query(s, (char *)s->client_msg.data, s->client_msg.len);
    }
    if (s->state == SESSION_ADMIN && (admin_waiting(s) || s->admin_rest) && off < n) {
        wbuf_put_bytes(&s->gate_rest, p + off, n - off);
    }
}

void admin_session_start(struct session *s)
{
    static const char *const params[][2] = {
        {"server_version", "15.0 (pgdual " PGDUAL_VERSION ")"},
        {"server_encoding", "UTF8"},
        {"client_encoding", "UTF8"},
        {"DateStyle", "ISO, MDY"},
        {"integer_datetimes", "on"},
        {"standard_conforming_strings", "on"},
        {"is_superuser", "off"},
    };
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        wire_put_parameter_status(&s->out, params[i][0], params[i][1]);
    }
    wire_put_backend_key(&s->out, s->id, s->cancel_secret);
    wire_put_ready(&s->out, PQ_TXN_IDLE);
    if (s->timer_open) {
        uv_timer_stop(&s->timer);
    }
    session_set_state(s, SESSION_ADMIN);
    wire_scanner_init(&s->client_scan, ADMIN_MAX_QUERY);
    if (session_flush_out(s) < 0) {
        return;
    }
    if (s->client_msg.len > 0) {
        struct wbuf early = s->client_msg;
        wbuf_init(&s->client_msg);
        admin_on_client_data(s, early.data, early.len);
        wbuf_free(&early);
    }
}
