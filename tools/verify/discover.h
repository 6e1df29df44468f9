/* tools/verify/discover.h: reads tables, columns and primary keys from both catalogs and
 * reports schema differences before any data is compared. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/verify/util.h"

struct options;
struct pool;

struct discover_col {
    char *name;           /* unquoted */
    char *qname;          /* quoted identifier for SQL */
    char *type;           /* format_type(), usable as a cast target */
    char category;        /* pg_type.typcategory */
    bool generated;       /* GENERATED ALWAYS AS: never inserted */
    bool identity_always; /* needs OVERRIDING SYSTEM VALUE on insert */
};

/* One side's view of a table. */
struct discover_side {
    bool present;
    struct discover_col *cols;
    int ncols;
    int *keys; /* indexes into cols, primary key order */
    int nkeys;
    double reltuples;       /* planner estimate, <0 unknown */
    int64_t blocks;         /* heap size in blocks at the snapshot */
    int64_t relpages;       /* heap size in blocks when reltuples was estimated (0: never) */
    int64_t shared_buffers; /* the server's shared_buffers, in blocks */
};

struct discover_table {
    char *schema, *name;
    char *display; /* schema.name for humans and JSON */
    char *qname;   /* "schema"."name" for SQL */
    struct discover_side side[2];
    char **schema_diffs; /* human-readable; non-empty means data is not compared */
    int nschema_diffs;
    bool comparable; /* present on both sides with the same columns and key */
};

struct discover_catalog {
    struct discover_table *t;
    int n;
};

/* Fills cat from both sides (pool must be inside pool_begin). 0, or -1 with err set
 * (requested table absent on both sides, unsupported key type, catalog query failure). */
int discover_run(struct pool *p, const struct options *o, struct discover_catalog *cat, char *err,
                 size_t errlen) WUR;
void discover_free(struct discover_catalog *cat);
/* The side whose definitions drive SQL generation (the primary if present). */
const struct discover_side *discover_ref(const struct discover_table *t, int primary);
