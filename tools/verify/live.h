/* tools/verify/live.h: --live --repair --apply: passes of locked chunk repair (DESIGN §7) that
 * repeat until one repairs nothing; the scan hands it the ranges that differ. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "tools/verify/scan.h"
#include "tools/verify/util.h"

struct options;
struct table;

/* Rows per leaf range: the bisection stops here; the leaf's keys and row hashes are read without
 * locks and only the keys that differ are locked and repaired, 200 per transaction (chunk.c). A
 * leaf is locked whole only when that read failed. */
#define LIVE_CHUNK_ROWS    65536
/* Attempts per chunk after a lock timeout, a deadlock or a serialization failure. */
#define LIVE_RETRIES       8
/* Longest wait for the transactions of a chunk's snapshot to end before extras are re-read. */
#define LIVE_XIP_TIMEOUT_S 60.0

/* Called after each table of a pass (the console's RECONCILE PROGRESS). */
typedef void (*live_table_fn)(void *ctx, int done, int total, int64_t rows_repaired);

/* A row that looked extra on the secondary: deleted only after every transaction of snap has
 * ended on the primary and a fresh locked read still lacks it. */
struct live_extra {
    char *key; /* packed (keys.h) */
    size_t klen;
    char *snap; /* pg_current_snapshot() text taken on the primary after the secondary's read */
};

/* Repaired rows of one table within the current rate-limit minute. */
struct live_rate {
    char *table;
    double minute; /* util_now() when the minute began */
    int64_t rows;
};

/* --stats: what the leaf repair of the current table did, summed over its connection pairs (so
 * the seconds can add up to more than the time it took). */
struct live_stats {
    int64_t leaves;      /* leaf ranges read for suspects */
    int64_t batches;     /* locked transactions committed */
    int64_t retries;     /* locked attempts rolled back and tried again */
    int64_t upserts;     /* upsert statements sent (one per locked transaction with any) */
    int64_t upsert_rows; /* rows in them */
    double suspects_s;   /* reading the leaves' keys and row hashes, both sides */
    double locked_s;     /* in locked attempts (reads, writes, commits) */
    double writes_s;     /* of which the writes on the secondary */
    int pairs;           /* connection pairs used */
    double scan_t0;      /* when the table's scan (checksums, bisection) began */
    double scan_s;       /* how long it took */
};

struct live {
    const struct options *o;
    PGconn *c[2]; /* autocommit connections for the locked repairs, by side */
    int primary;
    long pass; /* pass number (logs); pgdual's pass id with --pgdual-pass */
    FILE *log; /* --repair-log, or NULL */
    FILE *out; /* repair lines (stdout) */
    /* Serializes the repair lines and the log while a table's leaves are repaired on several
     * connection pairs at once (leafjobs.c); NULL otherwise. */
    pthread_mutex_t *out_mu;
    /* The table being repaired (the scan fills the first three). */
    struct scan_range *chunks; /* leaf ranges that differed, <= LIVE_CHUNK_ROWS each */
    size_t nchunks, capchunks;
    bool keyless_differs;      /* a keyless table's totals differed */
    struct live_extra *extras; /* per table, handled after its chunks */
    size_t nextras, capextras;
    int64_t table_rows;   /* rows repaired in this table in this pass */
    struct live_stats st; /* this table's, for --stats */
    char **redo;          /* tables to check again in the next pass ("schema.name") */
    int nredo;
    bool table_unsettled; /* a chunk of this table could not be repaired (retries, rate limit) */
    /* Per pass and run. */
    int64_t pass_rows, total_rows;
    long pass_label; /* fixed pass number for the logs (pgdual's), 0 = count */
    live_table_fn on_table;
    void *on_table_ctx;
    int64_t pass_unsettled; /* chunks / tables left differing in this pass */
    struct live_rate *rates;
    int nrates;
    /* Backfill (backfill.c). */
    struct scan_range *copies; /* ranges of the table empty on the secondary, to COPY */
    size_t ncopies;
    int64_t copy_rows_est;
    struct resume *resume; /* --resume, or NULL */
    int64_t pass_copied;   /* rows copied in this pass */
    int bf_tables;
    int64_t bf_ranges, bf_rows;
    double bf_seconds;
    char error[1024]; /* fatal error (connection lost, unexpected SQL error) */
};

/* Puts table ("schema.name") on the list the next pass checks again. */
void live_redo_add(struct live *lv, const char *table);
/* Connects one side for the repairs (application_name pgdual-verify). NULL with err set. */
PGconn *live_connect(const char *conninfo, int side, char *err, size_t errlen);
/* Before table t is scanned: the backfill's table-level fast path. 1 = copied (skip the scan; the
 * next pass checks the table), 0 = scan it, -1 = fatal (lv->error). */
int live_before_scan(struct live *lv, struct table *t) WUR;
/* Scan hook: a leaf range that differs becomes a chunk to repair (r is copied). */
void live_add_chunk(struct table *t, const struct scan_range *r);
/* Scan hook: a keyless table whose totals differ gets a multiset repair. */
void live_add_keyless(struct table *t);
/* Repairs what the scan of t found; 0 or -1 (fatal, lv->error). */
int live_repair_table(struct live *lv, struct table *t) WUR;

/* Prints "progress: tables D/T rows_repaired R" (pgdual shows it for a spawned pass). */
void live_progress(struct live *lv, int done, int total);

/* Repairs the table's leaves (lv->chunks) on --jobs connection pairs at once, one after the other
 * under --rate-limit or --jobs 1 (leafjobs.c); 0 or -1 (fatal, lv->error). */
int leafjobs_repair(struct live *lv, struct table *t) WUR;
/* Locked repair of one chunk [r) of a keyed table (chunk.c); 0 or -1 (fatal). */
int chunk_repair(struct live *lv, struct table *t, const struct scan_range *r) WUR;
/* The deferred extras of the table: xip wait, fresh locked re-read, delete (chunk.c). */
int chunk_extras(struct live *lv, struct table *t) WUR;
/* Multiset repair of a keyless table (multiset.c); 0 or -1 (fatal). */
int multiset_repair(struct live *lv, struct table *t) WUR;
/* True when the table may repair more rows this minute (--rate-limit); says so once if not. */
bool live_budget(struct live *lv, const struct table *t);
/* Counts n repaired rows of t (pass, run, rate limit). */
void live_count(struct live *lv, const struct table *t, int64_t n);

/* What several runs (databases, rounds) add up to, for the summary and the JSON. */
struct live_totals {
    long passes;
    int64_t rows, bf_rows, bf_ranges;
    int bf_tables;
    double bf_seconds;
    char error[1024];
};

/* One round of passes over one database (o->conninfo), until a pass repairs nothing. pass_label:
 * the pass number written to the logs (pgdual's pass id), 0 = count passes. Exit status. */
int live_run_db(const struct options *o, long pass_label, live_table_fn fn, void *ctx,
                struct live_totals *tot);
/* Prints the result line and writes --json. Returns rc, or 2 when the JSON failed. */
int live_summary(const struct options *o, int rc, const struct live_totals *tot, double t0);
/* The whole --live run (passes, --watch loop, JSON summary). Returns the exit status. */
int live_main(const struct options *o);
/* Several databases (--tables-db, -c with pgdual's admin console): console.c. */
int console_main(const struct options *o);
