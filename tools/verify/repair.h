/* tools/verify/repair.h: SQL that makes the secondary match the primary, and applying it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "tools/verify/util.h"

struct discover_side;
struct options;
struct strbuf;
struct table;

/* Appends "INSERT INTO qname (cols) [OVERRIDING SYSTEM VALUE] VALUES ('v'::type, ...)" plus, with
 * upsert, "ON CONFLICT (pk) DO UPDATE SET c = EXCLUDED.c, ...", and ";\n". The values are columns
 * col0.. of res row (every column of sd as text, in sd's order); generated columns are skipped.
 * Literals are quoted for connection c. 0, or -1 when a value could not be quoted. */
int repair_put_insert(struct strbuf *b, PGconn *c, const char *qname,
                      const struct discover_side *sd, const PGresult *res, int row, int col0,
                      bool upsert) WUR;
/* Appends "DELETE FROM qname WHERE (pk) = ('k'::type, ...);\n" for a packed key. 0 or -1. */
int repair_put_delete(struct strbuf *b, PGconn *c, const char *qname,
                      const struct discover_side *sd, const char *key, size_t klen) WUR;

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
