/* tools/verify/console.h: the databases and tables of a --live run over several databases
 * (--tables-db, pgdual's reconcile list), and the admin-console client (console.c). */
#pragma once
#include <stdbool.h>

/* One database and its tables. */
struct dbjob {
    char *db;
    char **tables; /* "schema.table", NULL-terminated; ignored when all */
    int ntables;
    bool all; /* every table of the database ("db:*" or "db") */
};

struct dblist {
    struct dbjob *v;
    int n;
};

/* Parses "db:schema.t,db2:schema.t2,db3:*" (pgdual's reconcile_tables) into l, one entry per
 * database in first-seen order. 0, or -1 when an entry has no database or no table. */
int console_parse_tables(const char *spec, struct dblist *l);
void console_dblist_free(struct dblist *l);
