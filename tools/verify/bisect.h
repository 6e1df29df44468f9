/* tools/verify/bisect.h: narrows a mismatching key range down to rows and diffs them. */
#pragma once
#include <stdint.h>

struct table;
struct scan_range;

/* Handles a range whose checksums differ (cnt: its row counts on old and new). Small ranges
 * are diffed row by row (key + row hash from both sides); larger ones are cut into
 * TABLE_SPLIT_WAYS pieces at rank-spaced keys and checksummed again. r is copied. */
void bisect_range(struct table *t, const struct scan_range *r, const int64_t cnt[2]);
