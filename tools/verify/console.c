/* tools/verify/console.c: --live over several databases (--tables-db, or every database), and the
 * talk with pgdual's admin console for -c pgdual.ini: SHOW STATUS, RECONCILE START, PROGRESS,
 * DONE (START again after a stale DONE) or ABORT. */
#include "tools/verify/console.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <libpq-fe.h>

#include "config/userlist.h"
#include "tools/verify/live.h"
#include "tools/verify/options.h"
#include "tools/verify/strbuf.h"

/* Times a stale DONE starts a new pass before the tool gives up (exit 1). */
#define CONSOLE_STARTS       5
/* Seconds RECONCILE START is retried while sessions relay without the secondary. */
#define CONSOLE_START_WAIT_S 120

/* RECONCILE PROGRESS context: counts over every database of the pass. */
struct console_progress {
    PGconn *admin; /* NULL: print only */
    long pass;
    int base_done, base_total, last_total;
};

void console_dblist_free(struct dblist *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].db);
        for (int k = 0; k < l->v[i].ntables; k++) {
            free(l->v[i].tables[k]);
        }
        free(l->v[i].tables);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static struct dbjob *db_get(struct dblist *l, const char *db, size_t len)
{
    for (int i = 0; i < l->n; i++) {
        if (strlen(l->v[i].db) == len && !strncmp(l->v[i].db, db, len)) {
            return &l->v[i];
        }
    }
    l->v = util_xrealloc(l->v, sizeof *l->v * (size_t)(l->n + 1));
    l->v[l->n] = (struct dbjob){.db = util_xmemdup(db, len)};
    return &l->v[l->n++];
}

/* conninfo plus dbname='db' (a later keyword wins in a key=value string). */
static char *with_db(const char *conninfo, const char *db)
{
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "%s dbname='", conninfo);
    for (const char *c = db; *c; c++) {
        if (*c == '\'' || *c == '\\') {
            strbuf_puts(&b, "\\");
        }
        strbuf_put(&b, c, 1);
    }
    strbuf_puts(&b, "'");
    return strbuf_take(&b);
}

/* Every connectable, non-template database of the primary that holds a user table. */
static int all_dbs(const struct options *o, struct dblist *l, char *err, size_t el)
{
    char *ci = with_db(o->conninfo[o->primary], "postgres");
    PGconn *c = PQconnectdb(ci);
    free(ci);
    PGresult *r = PQstatus(c) == CONNECTION_OK
                      ? PQexec(c, "SELECT datname FROM pg_database WHERE datallowconn AND NOT"
                                  " datistemplate ORDER BY 1")
                      : NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, el, "cannot list the databases of %s: %s", util_side_name(o->primary),
                 PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *db = PQgetvalue(r, i, 0);
        ci = with_db(o->conninfo[o->primary], db);
        PGconn *d = PQconnectdb(ci);
        free(ci);
        PGresult *n = PQstatus(d) != CONNECTION_OK
                          ? NULL
                          : PQexec(d, "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace s"
                                      " ON s.oid = c.relnamespace WHERE c.relkind = 'r' AND"
                                      " s.nspname NOT IN ('pg_catalog', 'information_schema') AND"
                                      " s.nspname !~ '^pg_(toast|temp_)')");
        if (PQresultStatus(n) != PGRES_TUPLES_OK) {
            /* A database the pass cannot look into is not one it may call equal. */
            snprintf(err, el, "cannot list the tables of database %s on %s: %s", db,
                     util_side_name(o->primary), PQerrorMessage(d));
            PQclear(n);
            PQfinish(d);
            PQclear(r);
            PQfinish(c);
            return -1;
        }
        if (PQgetvalue(n, 0, 0)[0] == 't') {
            db_get(l, db, strlen(db));
        }
        PQclear(n);
        PQfinish(d);
    }
    PQclear(r);
    PQfinish(c);
    return 0;
}

int console_parse_tables(const char *spec, struct dblist *l)
{
    char *copy = util_xstrdup(spec), *save = NULL;
    int rc = 0;
    for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        while (*e == ' ') {
            e++;
        }
        char *colon = strchr(e, ':');
        struct dbjob *j = db_get(l, e, colon ? (size_t)(colon - e) : strlen(e));
        const char *t = colon ? colon + 1 : "*";
        if (!*j->db || !*t) {
            rc = -1;
        } else if (!strcmp(t, "*")) {
            j->all = true;
        } else {
            j->tables = util_xrealloc(j->tables, sizeof *j->tables * (size_t)(j->ntables + 2));
            j->tables[j->ntables++] = util_xstrdup(t);
            j->tables[j->ntables] = NULL;
        }
    }
    free(copy);
    return rc;
}

static void on_table(void *ctx, int done, int total, int64_t rows)
{
    struct console_progress *cp = ctx;
    cp->last_total = total;
    printf("progress: tables %d/%d rows_repaired %lld\n", cp->base_done + done,
           cp->base_total + total, (long long)rows);
    fflush(stdout);
    if (cp->admin) {
        char sql[160];
        snprintf(sql, sizeof sql, "RECONCILE PROGRESS %ld %d %d %lld", cp->pass,
                 cp->base_done + done, cp->base_total + total, (long long)rows);
        PQclear(PQexec(cp->admin, sql));
    }
}

/* One round over every database of l. Exit status (the worst of the databases). */
static int run_dbs(const struct options *o, const struct dblist *l, struct console_progress *cp,
                   struct live_totals *tot)
{
    int worst = UTIL_EXIT_SAME;
    for (int i = 0; i < l->n && worst != UTIL_EXIT_ERROR; i++) {
        struct options po = *o;
        po.conninfo[0] = with_db(o->conninfo[0], l->v[i].db);
        po.conninfo[1] = with_db(o->conninfo[1], l->v[i].db);
        po.tables = l->v[i].all ? NULL : l->v[i].tables;
        po.schema = po.tables ? NULL : o->schema;
        printf("database %s\n", l->v[i].db);
        cp->last_total = 0;
        int rc = live_run_db(&po, o->pgdual_pass, on_table, cp, tot);
        cp->base_done += cp->last_total;
        cp->base_total += cp->last_total;
        worst = rc > worst ? rc : worst;
        free(po.conninfo[0]);
        free(po.conninfo[1]);
    }
    return worst;
}

static int resolve_dbs(const struct options *o, const char *spec, struct dblist *l,
                       struct live_totals *tot)
{
    if (!spec || !*spec || !strcmp(spec, "*")) {
        return all_dbs(o, l, tot->error, sizeof tot->error);
    }
    if (console_parse_tables(spec, l) < 0) {
        snprintf(tot->error, sizeof tot->error, "bad table list '%s'", spec);
        return -1;
    }
    return 0;
}

static int run_spec(const struct options *o, const char *spec, struct console_progress *cp,
                    struct live_totals *tot)
{
    struct dblist l = {0};
    int rc = resolve_dbs(o, spec, &l, tot) < 0 ? UTIL_EXIT_ERROR : run_dbs(o, &l, cp, tot);
    console_dblist_free(&l);
    return rc;
}

/* [pgdual] keys the admin console is found from. */
struct console_cfg {
    char addr[256], port[16], admins[256], auth_file[1024];
};

static int on_cfg(void *user, const char *section, const char *name, const char *value)
{
    struct console_cfg *c = user;
    if (strcmp(section, "pgdual")) {
        return 1;
    }
    char *dst = !strcmp(name, "listen_addr")   ? c->addr
                : !strcmp(name, "listen_port") ? c->port
                : !strcmp(name, "admin_users") ? c->admins
                : !strcmp(name, "auth_file")   ? c->auth_file
                                               : NULL;
    size_t cap = dst == c->port ? sizeof c->port : dst == c->auth_file ? sizeof c->auth_file : 256;
    if (dst) {
        snprintf(dst, cap, "%s", value);
    }
    return 1;
}

static void put_kv(struct strbuf *b, const char *k, const char *v)
{
    strbuf_printf(b, " %s='", k);
    for (const char *c = v; *c; c++) {
        if (*c == '\'' || *c == '\\') {
            strbuf_puts(b, "\\");
        }
        strbuf_put(b, c, 1);
    }
    strbuf_puts(b, "'");
}

/* A plain-text password (not a SCRAM verifier nor an md5 hash). */
static bool plain(const char *pw)
{
    return strncmp(pw, "SCRAM-SHA-256$", 14) && !(strlen(pw) == 35 && !strncmp(pw, "md5", 3));
}

/* The admin console's conninfo: --admin, else listen_addr/port and the first admin user with a
 * plain-text password in auth_file (or none: trust). NULL with err set. */
static char *admin_conninfo(const struct options *o, char *err, size_t el)
{
    if (o->admin) {
        return util_xstrdup(o->admin);
    }
    struct console_cfg c = {.addr = "127.0.0.1", .port = "6432", .admins = "admin"};
    if (ini_parse(o->config, on_cfg, &c) != 0) {
        snprintf(err, el, "cannot read %s", o->config);
        return NULL;
    }
    char auth[2048] = "";
    const char *slash = strrchr(o->config, '/');
    if (c.auth_file[0] && c.auth_file[0] != '/' && slash) {
        snprintf(auth, sizeof auth, "%.*s/%s", (int)(slash - o->config), o->config, c.auth_file);
    } else {
        snprintf(auth, sizeof auth, "%s", c.auth_file);
    }
    struct userlist *ul = NULL;
    char uerr[256];
    if (auth[0] && userlist_load(auth, &ul, uerr, sizeof uerr) < 0) {
        ul = NULL;
    }
    char *save = NULL, *first = NULL, *user = NULL, *pw = NULL;
    for (char *u = strtok_r(c.admins, ", ", &save); u && !pw; u = strtok_r(NULL, ", ", &save)) {
        first = first ? first : u;
        const struct userlist_entry *e = ul ? userlist_find(ul, u) : NULL;
        if (e && plain(e->password)) {
            user = u;
            pw = e->password;
        }
    }
    if (!first) {
        snprintf(err, el, "%s names no admin_users; give --admin CONNINFO", o->config);
        userlist_free(ul);
        return NULL;
    }
    struct strbuf b;
    strbuf_init(&b);
    put_kv(&b, "host", c.addr);
    put_kv(&b, "port", c.port);
    put_kv(&b, "user", user ? user : first);
    put_kv(&b, "dbname", "pgdual");
    if (pw) {
        put_kv(&b, "password", pw);
    }
    userlist_free(ul);
    return strbuf_take(&b);
}

/* Runs an admin command; the result (NULL on a connection failure). */
static PGresult *admin(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
        fprintf(stderr, "pgdual-verify: admin: %s: %s", sql, m);
    }
    return r;
}

static bool sqlstate_is(const PGresult *r, const char *code)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return st && !strcmp(st, code);
}

static bool ok(const PGresult *r)
{
    return PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
}

/* SHOW STATUS value of key into out ("" when absent). -1 when the command failed. */
static int status_of(PGconn *c, const char *key, char *out, size_t len)
{
    PGresult *r = admin(c, "SHOW STATUS");
    int rc = ok(r) ? 0 : -1;
    out[0] = '\0';
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        if (!strcmp(PQgetvalue(r, i, 0), key)) {
            snprintf(out, len, "%s", PQgetvalue(r, i, 1));
        }
    }
    PQclear(r);
    return rc;
}

/* One RECONCILE START .. DONE|ABORT. Exit status; *stale when DONE said the pass is stale. */
static int one_reconcile(PGconn *c, struct options *po, bool primary_set, struct live_totals *tot,
                         bool *stale)
{
    PGresult *r = PQexec(c, "RECONCILE START");
    /* 55006: sessions still relay without the secondary (their writes miss it); they get it
     * back at their next unit boundary, or end. */
    for (int waited = 0; waited < CONSOLE_START_WAIT_S && sqlstate_is(r, "55006"); waited++) {
        if (waited == 0) {
            printf("reconcile: waiting: %s", PQresultErrorMessage(r));
            fflush(stdout);
        }
        PQclear(r);
        sleep(1);
        r = PQexec(c, "RECONCILE START");
    }
    if (!ok(r) || PQntuples(r) != 1 || PQnfields(r) < 4) {
        snprintf(tot->error, sizeof tot->error, "RECONCILE START failed: %s",
                 r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        PQclear(r);
        return UTIL_EXIT_ERROR;
    }
    struct console_progress cp = {.admin = c, .pass = atol(PQgetvalue(r, 0, 0))};
    if (!primary_set) {
        po->primary = !strcmp(PQgetvalue(r, 0, 1), "new") ? UTIL_NEW : UTIL_OLD;
    }
    char *tables = util_xstrdup(PQgetvalue(r, 0, 3));
    printf("reconcile: pass %ld started (primary %s, from %s, tables %s)\n", cp.pass,
           util_side_name(po->primary), PQgetvalue(r, 0, 2), tables);
    PQclear(r);
    po->pgdual_pass = cp.pass;
    int rc = run_spec(po, tables, &cp, tot);
    free(tables);
    char sql[64];
    snprintf(sql, sizeof sql, "RECONCILE %s %ld", rc == UTIL_EXIT_SAME ? "DONE" : "ABORT", cp.pass);
    r = admin(c, sql);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    *stale = rc == UTIL_EXIT_SAME && !ok(r) && state && !strcmp(state, "55000");
    if (rc == UTIL_EXIT_SAME && !ok(r) && !*stale) {
        snprintf(tot->error, sizeof tot->error, "%s failed: %s", sql,
                 r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        rc = UTIL_EXIT_ERROR;
    }
    printf("reconcile: pass %ld %s\n", cp.pass,
           rc != UTIL_EXIT_SAME ? "aborted"
           : *stale             ? "stale (a write was missed during the pass): starting again"
                                : "done: in sync");
    PQclear(r);
    return *stale ? UTIL_EXIT_DIFF : rc;
}

/* The console flow of one round: in_sync -> repair only; seeding -> backfill first; then
 * RECONCILE START .. DONE, again after a stale DONE. */
static int console_round(PGconn *c, const struct options *o, struct live_totals *tot)
{
    char state[64], primary[16];
    if (status_of(c, "secondary_state", state, sizeof state) < 0 ||
        status_of(c, "primary", primary, sizeof primary) < 0) {
        snprintf(tot->error, sizeof tot->error, "SHOW STATUS failed on pgdual's admin console");
        return UTIL_EXIT_ERROR;
    }
    struct options po = *o;
    if (!o->primary_set && primary[0]) {
        po.primary = !strcmp(primary, "new") ? UTIL_NEW : UTIL_OLD;
    }
    struct console_progress cp = {0};
    printf("pgdual: secondary_state %s, primary %s\n", state, util_side_name(po.primary));
    if (!strcmp(state, "in_sync")) {
        return run_spec(&po, o->tables_db, &cp, tot);
    }
    if (!strcmp(state, "seeding")) {
        int rc = run_spec(&po, "*", &cp, tot);
        if (rc == UTIL_EXIT_ERROR) {
            return rc;
        }
    }
    int rc = UTIL_EXIT_DIFF;
    bool stale = true;
    for (int n = 0; n < CONSOLE_STARTS && stale; n++) {
        rc = one_reconcile(c, &po, o->primary_set, tot, &stale);
    }
    return rc;
}

int console_main(const struct options *o)
{
    struct live_totals tot = {0};
    double t0 = util_now();
    struct console_progress cp = {0};
    if (o->pgdual_pass || !o->config) { /* spawned by pgdual, or no console to talk to */
        int rc = run_spec(o, o->tables_db, &cp, &tot);
        return live_summary(o, rc, &tot, t0);
    }
    char *ci = admin_conninfo(o, tot.error, sizeof tot.error);
    PGconn *c = ci ? PQconnectdb(ci) : NULL;
    free(ci);
    int rc = UTIL_EXIT_ERROR;
    if (c && PQstatus(c) != CONNECTION_OK) {
        snprintf(tot.error, sizeof tot.error, "cannot connect to pgdual's admin console: %s",
                 PQerrorMessage(c));
    } else if (c) {
        rc = console_round(c, o, &tot);
        while (o->watch && rc != UTIL_EXIT_ERROR) {
            sleep((unsigned)o->watch);
            rc = console_round(c, o, &tot);
        }
    }
    PQfinish(c);
    return live_summary(o, rc, &tot, t0);
}
