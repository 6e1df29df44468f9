/* tools/verify/repair.h: SQL that makes the secondary match the primary, and applying it. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tools/verify/util.h"

struct options;
struct table;

/* Queues a fetch of the primary's row (each column as text) and appends
 * INSERT ... ON CONFLICT (pk) DO UPDATE to the table's repair SQL. */
void repair_upsert(struct table *t, const char *key, size_t klen);
/* Appends DELETE ... WHERE (pk) = (...) for a row only on the secondary. */
void repair_delete(struct table *t, const char *key, size_t klen);
/* Keyless tables: inserts n copies of the primary's rows with this row hash. */
void repair_keyless_insert(struct table *t, int64_t hash, int64_t n);
/* Keyless tables: deletes n of the secondary's rows with this row hash. */
void repair_keyless_delete(struct table *t, int64_t hash, int64_t n);
/* Runs sql on the secondary inside one transaction. 0, or -1 with err set. */
int repair_apply(const struct options *o, const char *sql, char *err, size_t errlen) WUR;
