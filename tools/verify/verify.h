/* tools/verify/verify.h: one verification pass: connect, discover, compare every table. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "tools/verify/discover.h"
#include "tools/verify/util.h"

struct live;
struct options;
struct pool;
struct result_table;

struct verify_pass {
    struct pool *pool;
    struct discover_catalog cat;
    struct result_table *res; /* one per cat.t */
    int64_t *bytes[2];        /* bytes received per connection of each side (-1 unknown) */
    int nconn;
    double start, seconds;
    struct live *live; /* --live: set after verify_discover; tables are repaired as they finish */
    int tables_done, tables_total;
    char error[1024]; /* set when a step returns -1 */
};

/* Connects, opens the per-side snapshots and reads both catalogs. 0 or -1 (vp->error). */
int verify_discover(const struct options *o, struct verify_pass *vp) WUR;
/* Checksums, bisects and diffs every comparable table, then closes the connections. */
int verify_compare(const struct options *o, struct verify_pass *vp) WUR;
/* UTIL_EXIT_SAME or UTIL_EXIT_DIFF for a completed pass. */
int verify_status(const struct verify_pass *vp);
/* True when table i differs in any way (schema, rows, multiset). */
bool verify_table_differs(const struct verify_pass *vp, int i);
void verify_free(struct verify_pass *vp);
