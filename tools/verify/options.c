/* tools/verify/options.c: command-line options of pgdual-verify and the pgdual.ini reader. */
#include "tools/verify/options.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

static const char usage[] =
    "usage: pgdual-verify (--old CONNINFO --new CONNINFO | -c pgdual.ini) [options]\n"
    "  --tables T1,T2    compare only these tables (schema.table; default schema public)\n"
    "  --schema S        compare every table of schema S (default: all user schemas)\n"
    "  --json FILE       write every difference as JSON to FILE\n"
    "  --primary old|new side that is the source of truth (default old)\n"
    "  --repair          print SQL that makes the secondary match the primary\n"
    "  --apply           with --repair: run it on the secondary in one transaction, verify again\n"
    "  --watch SECONDS   verify again and again, print only changes\n"
    "  --jobs N          connections per side (default 2)\n"
    "  --stats           print bytes received per connection on stderr (--live: each\n"
    "                    table's probe and repair: leaves, connection pairs, seconds)\n"
    "  --no-progress     never draw the progress bar\n"
    "  --live            with --repair --apply: locked chunk repair, safe while clients write;\n"
    "                    backfills ranges missing on the secondary with COPY; repeats passes\n"
    "  --max-passes N    --live: give up (exit 1) after N passes that still repaired (default 10)\n"
    "  --repair-log FILE --live: one JSON line per repaired row\n"
    "  --watch SECONDS   with --live --repair --apply: repair again and again, forever\n"
    "  --lock-timeout MS --live: lock_timeout of each chunk's transactions (default 2000)\n"
    "  --rate-limit N    --live: at most N repaired rows per table per minute\n"
    "  --resume FILE     --live: backfill progress file; a second run skips finished ranges\n"
    "  --admin CONNINFO  -c --live: pgdual's admin console (default: from the config)\n"
    "  --pgdual-pass N   internal: run pass N started by pgdual (no console)\n"
    "  --tables-db LIST  db:schema.t,... or * (with --pgdual-pass)\n"
    "exit status: 0 identical, 1 differences found, 2 error\n";

/* Receives [backends] old/new and [cutover] primary from pgdual.ini. */
static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    struct options *o = user;
    if (!strcmp(section, "backends") && (!strcmp(name, "old") || !strcmp(name, "new"))) {
        int s = !strcmp(name, "old") ? UTIL_OLD : UTIL_NEW;
        if (!o->conninfo[s]) {
            o->conninfo[s] = util_xstrdup(value);
        }
    } else if (!strcmp(section, "cutover") && !strcmp(name, "primary") && !o->primary_set) {
        o->primary = !strcmp(value, "new") ? UTIL_NEW : UTIL_OLD;
    }
    return 1;
}

static char **split_list(const char *s)
{
    size_t n = 1;
    for (const char *c = s; *c; c++) {
        n += *c == ',';
    }
    char **v = util_xcalloc(n + 1, sizeof *v);
    char *copy = util_xstrdup(s), *save = NULL;
    size_t k = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        v[k++] = util_xstrdup(t);
    }
    free(copy);
    return v;
}

static int positive(const char *arg, const char *what, int *out)
{
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    if (!*arg || *end || v < 1 || v > 86400) {
        fprintf(stderr, "pgdual-verify: %s must be a positive integer, got '%s'\n", what, arg);
        return -1;
    }
    *out = (int)v;
    return 0;
}

enum {
    OPT_OLD = 256,
    OPT_NEW,
    OPT_TABLES,
    OPT_SCHEMA,
    OPT_JSON,
    OPT_PRIMARY,
    OPT_REPAIR,
    OPT_APPLY,
    OPT_WATCH,
    OPT_JOBS,
    OPT_STATS,
    OPT_NOPROG,
    OPT_LIVE,
    OPT_REPLOG,
    OPT_MAXPASS,
    OPT_RATE,
    OPT_RESUME,
    OPT_ADMIN,
    OPT_PGPASS,
    OPT_TABLESDB,
    OPT_LOCKTO
};

static const struct option longopts[] = {{"old", required_argument, NULL, OPT_OLD},
                                         {"new", required_argument, NULL, OPT_NEW},
                                         {"config", required_argument, NULL, 'c'},
                                         {"tables", required_argument, NULL, OPT_TABLES},
                                         {"schema", required_argument, NULL, OPT_SCHEMA},
                                         {"json", required_argument, NULL, OPT_JSON},
                                         {"primary", required_argument, NULL, OPT_PRIMARY},
                                         {"repair", no_argument, NULL, OPT_REPAIR},
                                         {"apply", no_argument, NULL, OPT_APPLY},
                                         {"watch", required_argument, NULL, OPT_WATCH},
                                         {"jobs", required_argument, NULL, OPT_JOBS},
                                         {"stats", no_argument, NULL, OPT_STATS},
                                         {"no-progress", no_argument, NULL, OPT_NOPROG},
                                         {"live", no_argument, NULL, OPT_LIVE},
                                         {"repair-log", required_argument, NULL, OPT_REPLOG},
                                         {"max-passes", required_argument, NULL, OPT_MAXPASS},
                                         {"rate-limit", required_argument, NULL, OPT_RATE},
                                         {"resume", required_argument, NULL, OPT_RESUME},
                                         {"admin", required_argument, NULL, OPT_ADMIN},
                                         {"pgdual-pass", required_argument, NULL, OPT_PGPASS},
                                         {"tables-db", required_argument, NULL, OPT_TABLESDB},
                                         {"lock-timeout", required_argument, NULL, OPT_LOCKTO},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};

static void set_str(char **dst, const char *arg)
{
    free(*dst);
    *dst = util_xstrdup(arg);
}

/* The options of --live; 1 when c is not one of them. */
static int live_option(struct options *o, int c, const char *arg)
{
    int n = 0;
    switch (c) {
    case OPT_LIVE:
        o->live = true;
        return 0;
    case OPT_REPLOG:
        set_str(&o->repair_log, arg);
        return 0;
    case OPT_MAXPASS:
        return positive(arg, "--max-passes", &o->max_passes);
    case OPT_RATE:
        return positive(arg, "--rate-limit", &o->rate_limit);
    case OPT_LOCKTO:
        return positive(arg, "--lock-timeout", &o->lock_timeout_ms);
    case OPT_RESUME:
        set_str(&o->resume, arg);
        return 0;
    case OPT_ADMIN:
        set_str(&o->admin, arg);
        return 0;
    case OPT_PGPASS:
        if (positive(arg, "--pgdual-pass", &n) < 0) {
            return -1;
        }
        o->pgdual_pass = n;
        return 0;
    case OPT_TABLESDB:
        set_str(&o->tables_db, arg);
        return 0;
    default:
        return 1;
    }
}

static int one_option(struct options *o, int c, const char *arg, const char **config)
{
    int lrc = live_option(o, c, arg);
    if (lrc <= 0) {
        return lrc;
    }
    switch (c) {
    case OPT_OLD:
    case OPT_NEW:
        free(o->conninfo[c == OPT_OLD ? UTIL_OLD : UTIL_NEW]);
        o->conninfo[c == OPT_OLD ? UTIL_OLD : UTIL_NEW] = util_xstrdup(arg);
        return 0;
    case 'c':
        *config = arg;
        return 0;
    case OPT_TABLES:
        o->tables = split_list(arg);
        return 0;
    case OPT_SCHEMA:
        o->schema = util_xstrdup(arg);
        return 0;
    case OPT_JSON:
        o->json_path = util_xstrdup(arg);
        return 0;
    case OPT_PRIMARY:
        if (strcmp(arg, "old") && strcmp(arg, "new")) {
            fprintf(stderr, "pgdual-verify: --primary must be old or new, got '%s'\n", arg);
            return -1;
        }
        o->primary = !strcmp(arg, "new") ? UTIL_NEW : UTIL_OLD;
        o->primary_set = true;
        return 0;
    case OPT_REPAIR:
        o->repair = true;
        return 0;
    case OPT_APPLY:
        o->apply = true;
        return 0;
    case OPT_WATCH:
        return positive(arg, "--watch", &o->watch);
    case OPT_JOBS:
        return positive(arg, "--jobs", &o->jobs);
    case OPT_STATS:
        o->stats = true;
        return 0;
    case OPT_NOPROG:
        o->progress = false;
        return 0;
    case 'h':
        fputs(usage, stdout);
        return 1;
    default:
        fputs(usage, stderr);
        return -1;
    }
}

static int check(struct options *o, const char *config)
{
    if (config) {
        o->config = util_xstrdup(config);
        int rc = ini_parse(config, on_ini, o);
        if (rc != 0) {
            fprintf(stderr, "pgdual-verify: cannot read config %s (%s %d)\n", config,
                    rc < 0 ? "open failed," : "syntax error at line", rc);
            return -1;
        }
    }
    if (!o->conninfo[UTIL_OLD] || !o->conninfo[UTIL_NEW]) {
        fprintf(stderr, "pgdual-verify: need --old and --new (or -c pgdual.ini)\n%s", usage);
        return -1;
    }
    if (o->tables && o->schema) {
        fputs("pgdual-verify: --tables and --schema exclude each other\n", stderr);
        return -1;
    }
    if (o->apply && !o->repair) {
        fputs("pgdual-verify: --apply needs --repair\n", stderr);
        return -1;
    }
    if (o->watch && o->repair && !o->live) {
        fputs("pgdual-verify: --watch and --repair exclude each other (except with --live)\n",
              stderr);
        return -1;
    }
    if (o->live && !(o->repair && o->apply)) {
        fputs("pgdual-verify: --live needs --repair --apply\n", stderr);
        return -1;
    }
    if (!o->live && (o->repair_log || o->rate_limit || o->resume || o->pgdual_pass)) {
        fputs("pgdual-verify: --repair-log, --rate-limit, --resume and --pgdual-pass need --live\n",
              stderr);
        return -1;
    }
    if (o->jobs > 16) {
        o->jobs = 16;
    }
    return 0;
}

int options_parse(struct options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    optind = 0; /* full getopt reset: options_parse may run more than once (tests) */
    o->primary = UTIL_OLD;
    o->jobs = 2;
    o->max_passes = 10;
    o->lock_timeout_ms = 2000;
    o->progress = isatty(STDERR_FILENO);
    const char *config = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        int rc = one_option(o, c, optarg, &config);
        if (rc != 0) {
            return rc;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pgdual-verify: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    return check(o, config);
}

void options_free(struct options *o)
{
    free(o->conninfo[0]);
    free(o->conninfo[1]);
    for (char **t = o->tables; t && *t; t++) {
        free(*t);
    }
    free(o->tables);
    free(o->schema);
    free(o->json_path);
    free(o->repair_log);
    free(o->resume);
    free(o->config);
    free(o->admin);
    free(o->tables_db);
}
