/* tools/verify/backfill.h: the backfill fast path of --live (DESIGN §1, the seed step): key ranges
 * that have rows on the primary and none on the secondary are streamed with COPY, several ranges
 * in flight (--jobs connection pairs), one secondary transaction per range. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "tools/verify/util.h"

struct live;
struct scan_range;
struct table;

/* Rows per planned range of a table that is empty on the secondary. */
#define BACKFILL_RANGE_ROWS 1000000.0

/* Table level, before the table is scanned: when the secondary holds (almost) none of the
 * primary's rows, or --resume has unfinished ranges of the table, plans key ranges on the primary
 * (TABLESAMPLE) and copies every range still empty on the secondary. 1 when it did (the table is
 * checked again by the next pass), 0 when not applicable, -1 on a fatal error (lv->error). */
int backfill_table(struct live *lv, struct table *t) WUR;
/* Copies ranges r[0..n-1] with --jobs worker threads (one connection pair each); idx: their
 * positions in the --resume plan (recorded as done), or NULL; est: rows, for the progress bar.
 * A range that already has rows on the secondary is skipped. 0 or -1 (lv->error). */
int backfill_run(struct live *lv, struct table *t, struct scan_range *r, int *idx, int n,
                 double est) WUR;
/* Scan hook: a range with rows on the primary and none on the secondary (r is copied). */
void backfill_add_range(struct table *t, const struct scan_range *r, int64_t rows);
/* Copies the ranges the scan handed over (live_repair_table calls it first). 0 or -1. */
int backfill_pending(struct live *lv, struct table *t) WUR;
