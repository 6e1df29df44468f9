/* tools/verify/scan.h: checksums of key ranges computed inside both databases at once
 * (row count + sum of per-row text hashes per range, no rows transferred). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/verify/util.h"

struct table;
struct keys_row;

/* A key range [lo, hi); a missing bound is open. Keys are packed (keys.h). */
struct scan_range {
    bool has_lo, has_hi;
    char *lo, *hi;
    size_t lolen, hilen;
};

void scan_range_copy(struct scan_range *dst, const struct scan_range *src);
void scan_range_free(struct scan_range *r);
/* Appends the range's bound values to params (pointers into r), returns the count added. */
int scan_range_params(const struct table *t, const struct scan_range *r, const char **params);

/* Queues the whole-table checksum: each side's heap is cut into ctid chunks run on several
 * connections, each returning (count, sum of row hashes). If the totals differ, key boundaries
 * are sampled on the primary and the table is scanned again per key range; mismatching ranges
 * go to bisect. --live, a keyed table: the key boundaries first, then the probe (probe.h): every
 * range a leaf at once, or the above. 0 or -1 (pool_error). */
int scan_table(struct table *t) WUR;
/* Queues the whole-table checksum (what scan_table does without --live); if it differs, the key
 * ranges are sampled and scanned, mismatching ranges go to bisect. */
void scan_table_total(struct table *t);
/* Queues a checksum of r cut at bounds (nbounds packed keys, copied) on both sides. */
void scan_start(struct table *t, const struct scan_range *r, const struct keys_row *bounds,
                int nbounds);
