/* proxy/dualwrite/divergence_table.h: the divergences seen since start, grouped by (fingerprint,
 * kind) for SHOW DIVERGENCES: each group's count, first and last time seen and statement text.
 * Bounded: past max_groups groups, divergences of new groups are counted in one overflow row. Any
 * thread may use it: one mutex, taken only to add a divergence and to list the table (never per
 * message). It reads no clock: callers pass the time. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DIVERGENCE_TABLE_GROUPS        1000 /* the server's bound on groups */
#define DIVERGENCE_TABLE_STMT_MAX      1024 /* bytes kept of a group's statement, NUL included */
#define DIVERGENCE_TABLE_KIND_MAX      32   /* bytes kept of a kind, NUL included */
/* The overflow row: fingerprint 0 and these. */
#define DIVERGENCE_TABLE_OVERFLOW_KIND "other"
#define DIVERGENCE_TABLE_OVERFLOW_STMT "(other statements: table full)"
/* The statement of a group added without one. */
#define DIVERGENCE_TABLE_UNKNOWN_STMT  "(statement not known)"
/* The statement of a fingerprint-0 group once it has seen two different texts. */
#define DIVERGENCE_TABLE_VARIOUS_STMT  "(various statements)"

struct divergence_table;

/* One group, as a visitor sees it. The strings belong to the table and live only for the call. */
struct divergence_group {
    uint64_t fingerprint;  /* 0: unknown (or the overflow row) */
    const char *kind;      /* outcome_diff_name(), or DIVERGENCE_TABLE_OVERFLOW_KIND */
    uint64_t count;        /* divergences counted in this group */
    time_t first_seen;     /* time passed to the first divergence_table_add of the group */
    time_t last_seen;      /* ...and to the last one */
    const char *statement; /* never NULL; at most DIVERGENCE_TABLE_STMT_MAX - 1 bytes */
};

/* Called once per group by divergence_table_visit, with the table's lock held: it must not call
 * into the table. */
typedef void (*divergence_group_fn)(void *ctx, const struct divergence_group *g);

/* An empty table of at most max_groups groups (plus the overflow row). Its arrays are allocated
 * here, so adding and listing never fail (a statement that finds no memory for its copy is
 * shown as not known). NULL on allocation failure. */
struct divergence_table *divergence_table_new(size_t max_groups);
/* Frees the table and every group (NULL: nothing). */
void divergence_table_free(struct divergence_table *t);
/* Count one divergence of kind at time now. statement (borrowed; NULL = not known) becomes the
 * text of a new group, cut at a UTF-8 character boundary to fit; an existing group keeps its
 * text. A new (fingerprint, kind) pair when the table is full is counted in the overflow row. */
void divergence_table_add(struct divergence_table *t, uint64_t fingerprint, const char *kind,
                          const char *statement, time_t now);
/* Call fn for every group, the most recently seen first (ties: the most recently added first).
 * Returns the number of groups visited. */
size_t divergence_table_visit(struct divergence_table *t, divergence_group_fn fn, void *ctx);
