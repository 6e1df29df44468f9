/* tools/verify/table.h: one table being compared during a pass, with its SQL fragments. */
#pragma once
#include <stdbool.h>

#include "tools/verify/strbuf.h"
#include "tools/verify/util.h"

struct discover_table;
struct live;
struct discover_side;
struct options;
struct pool;
struct progress;
struct result_table;

/* Rows per range below which both sides' keys and row hashes are fetched and diffed. */
#define TABLE_LEAF_ROWS  4096
/* Pieces a mismatching range is cut into. */
#define TABLE_SPLIT_WAYS 16

struct table {
    struct pool *pool;
    const struct options *opt;
    const struct discover_table *def;
    const struct discover_side *ref; /* definitions used for SQL (the primary's) */
    struct result_table *res;
    struct progress *prog;
    int primary;
    char *rowhash;     /* hashtextextended(ROW(t.c1, ...)::text, 0) */
    char *keycols;     /* t.k1, t.k2 */
    char *keytext;     /* t.k1::text, t.k2::text */
    char *subkeytext;  /* s.k1::text, s.k2::text (over a subquery aliased s) */
    char *allcols;     /* t.c1::text, ... (every column, for repair) */
    int leaf_rows;     /* a range of at most this many rows is diffed (or, live, repaired) */
    struct live *live; /* --live: differing leaves become chunks repaired under locks */
    bool probed;       /* --live: the probe (probe.h) has chosen how to scan the table */
};

void table_init(struct table *t, struct pool *p, const struct options *o,
                const struct discover_table *def, struct result_table *res, struct progress *prog);
void table_free(struct table *t);
/* Appends "(t.k1, t.k2) >= ($n::type, ...)" style predicates for the optional bounds;
 * params are numbered from first. Appends "true" when both are absent. */
void table_range_pred(const struct table *t, struct strbuf *b, bool has_lo, bool has_hi, int first);
/* Appends "(t.k1, t.k2) <op> ($first::type1, ...)". */
void table_key_cmp(const struct table *t, struct strbuf *b, const char *op, int first);
/* Appends "$first::type1, ..." for one packed key. */
void table_key_params(const struct table *t, struct strbuf *b, int first);
