/* tools/verify/options.h: command-line options of pgdual-verify and the pgdual.ini reader. */
#pragma once
#include <stdbool.h>

#include "tools/verify/util.h"

struct options {
    char *conninfo[2];   /* libpq conninfo of old and new */
    char **tables;       /* --tables: "schema.table" or "table" (public); NULL-terminated or NULL */
    char *schema;        /* --schema: every table of one schema */
    char *json_path;     /* --json FILE */
    int primary;         /* UTIL_OLD or UTIL_NEW: the side repairs copy from */
    bool primary_set;    /* --primary given (else the config's [cutover] primary, else old) */
    bool repair, apply;  /* --repair, --repair --apply */
    int watch;           /* --watch SECONDS, 0 = once */
    int jobs;            /* connections per side */
    bool stats;          /* --stats: bytes received per connection on stderr */
    bool progress;       /* progress bar allowed (stderr is a terminal, no --no-progress) */
    bool live;           /* --live: locked chunk repair safe against concurrent writes */
    char *repair_log;    /* --repair-log FILE: one JSON line per repaired row */
    int max_passes;      /* --max-passes N (live): passes before giving up (default 10) */
    int lock_timeout_ms; /* --lock-timeout MS (live): lock_timeout of the repair transactions */
    int rate_limit;      /* --rate-limit N (live): repaired rows per table per minute, 0 = none */
    char *resume;        /* --resume FILE (live): backfill progress file */
    char *config;        /* -c FILE, kept for the admin console (live) */
    char *admin;         /* --admin CONNINFO: pgdual's admin console when -c has no password */
    long pgdual_pass;    /* --pgdual-pass N: spawned by pgdual for pass N (no console), 0 = not */
    char *tables_db;     /* --tables-db db:schema.t,... or "*" (with --pgdual-pass or -c) */
};

/* Parses argv. Returns 0, 1 when --help was printed, or -1 after printing an error. */
int options_parse(struct options *o, int argc, char **argv) WUR;
void options_free(struct options *o);
