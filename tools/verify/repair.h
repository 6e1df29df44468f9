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
/* The pieces of repair_put_insert, for one statement over many rows: "INSERT INTO qname AS
 * pgdual_t (cols) [OVERRIDING SYSTEM VALUE] VALUES "; one row "('v'::type, ...)" (0 or -1 as
 * above); " ON CONFLICT (pk) DO UPDATE SET ... WHERE (the row differs as text)". */
void repair_put_insert_head(struct strbuf *b, const char *qname, const struct discover_side *sd);
int repair_put_values(struct strbuf *b, PGconn *c, const struct discover_side *sd,
                      const PGresult *res, int row, int col0) WUR;
void repair_put_upsert_tail(struct strbuf *b, const struct discover_side *sd);
/* Appends "DELETE FROM qname WHERE (pk) = ('k'::type, ...);\n" for a packed key. 0 or -1. */
int repair_put_delete(struct strbuf *b, PGconn *c, const char *qname,
                      const struct discover_side *sd, const char *key, size_t klen) WUR;

/* Queues a fetch of the primary's row (each column as text) and appends
 * INSERT ... ON CONFLICT (pk) DO UPDATE to the table's repair SQL. */
void repair_upsert(struct table *t, const char *key, size_t klen);
/* Appends DELETE ... WHERE (pk) = (...) for a row only on the secondary. */
void repair_delete(struct table *t, const char *key, size_t klen);
/* Keyless tables. hashes and counts are int8[] literals ('{h1,h2}', '{n1,n2}') of equal length:
 * appends to b a SELECT of the ctids of the first n copies (in no defined order) of each row hash
 * h of qname, in one scan of the table (row_number() over the hash). */
void repair_put_keyless_copies(struct strbuf *b, const struct table *t, const char *hashes,
                               const char *counts);
/* Keyless tables: queues a fetch of the primary's copies missing on the secondary (counts per
 * hash) and appends a plain INSERT per copy; appends one DELETE of the secondary's surplus
 * copies. Either pair may be NULL (nothing of that kind). */
void repair_keyless(struct table *t, const char *ins_hashes, const char *ins_counts,
                    const char *del_hashes, const char *del_counts);
/* Runs sql on the secondary inside one transaction. 0, or -1 with err set. */
int repair_apply(const struct options *o, const char *sql, char *err, size_t errlen) WUR;
