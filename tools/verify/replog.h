/* tools/verify/replog.h: the repair log of --live: one JSON line per repaired row (--repair-log)
 * and one human line on stdout (--watch relies on it). Formatting is pure. */
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "tools/verify/util.h"

struct strbuf;

/* One repair. Arrays are borrowed; a NULL value in keyvals / before / lo / hi is SQL NULL. */
struct replog_entry {
    const char *table;  /* schema.name */
    const char *action; /* insert|update|delete|multiset_insert|multiset_delete|copy_range */
    int nkeys;
    const char *const *keynames; /* primary-key column names */
    const char *const *keyvals;  /* the row's key (NULL for multiset and copy_range) */
    int ncols;
    const char *const *cols;   /* columns written (update: the changed ones) */
    const char *const *before; /* update: the secondary's values before, parallel to cols */
    int64_t rows;              /* multiset_* and copy_range: rows; <0 omitted */
    const char *row_hash;      /* multiset_*: the row hash, else NULL */
    const char *const *lo;     /* copy_range: bounds (packed per key column), NULL = open */
    const char *const *hi;
};

/* Appends one JSON object (no newline):
 * {"time":"...","pass":N,"table":"...","action":"...","key":{"k":"v"},"columns":["c"],
 *  "before":{"c":"v"}} or, for copy_range, "rows":N,"lo":{...}|null,"hi":{...}|null. */
void replog_json(struct strbuf *b, const char *time, long pass, const struct replog_entry *e);
/* Appends the stdout line (no newline): "repair: pass N public.t update (id)=(5) columns: a, b". */
void replog_text(struct strbuf *b, long pass, const struct replog_entry *e);
/* Formats now as ISO 8601 UTC with milliseconds ("2024-05-01T12:00:00.123Z"). */
void replog_now(char *buf, size_t len);
/* Writes both lines: the JSON to log (if not NULL, flushed) and the text to out. */
void replog_emit(FILE *log, FILE *out, long pass, const struct replog_entry *e);
