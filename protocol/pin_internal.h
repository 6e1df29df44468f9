/* protocol/pin_internal.h: helpers shared by pin.c, pin_catalog.c and pin_sql.c (not for use
 * outside protocol/). */
#pragma once
#include <stdbool.h>

#include "protocol/pin.h"
#include "protocol/wire.h"

/* Copy a name (NULL: "") cut to PIN_NAME_MAX bytes. */
void pin_copy_name(pin_name dst, const char *src);
/* Append s without its NUL. */
void pin_put_str(struct wbuf *b, const char *s);
/* Append s as an E'' literal: the same under any standard_conforming_strings. */
void pin_put_escaped_literal(struct wbuf *b, const char *s);
/* Append s as a quoted identifier ("..." with " doubled). */
void pin_put_ident(struct wbuf *b, const char *s);
/* t's column named name, or NULL. */
const struct pin_column *pin_find_col(const struct pin_table *t, const char *name);
/* Does a pinned st's row return column c (INSERT: every stored column; UPDATE: the key and
 * what it sets; DELETE: the key)? */
bool pin_column_returned(const struct pin_stmt *st, const struct pin_column *c);
/* SQL: the kind (pin_value_kind's letter: j json, b jsonb, a an array, p anything else) of the
 * type of the pg_attribute row "a", through domains over domains: a domain keeps its base type's
 * output function and category at every level (CREATE DOMAIN copies them), so one index lookup
 * of the column's own type tells, json_out(json) and jsonb_out(jsonb) being json's and jsonb's
 * alone (named with their argument: a superuser's overload of the name must not fail it). The
 * catalog lookup reads it and the primary's check at each execution compares it (pin_sql.c): the
 * same text in both. (Walking the domains down with a recursive query, as before, cost a small
 * pinned INSERT on the simple protocol several times its own time on the primary.) */
#define PIN_COLUMN_KIND                                                                         \
    "(SELECT CASE WHEN t.typoutput = "                                                          \
    "'pg_catalog.json_out(pg_catalog.json)'::pg_catalog.regprocedure THEN 'j' WHEN "            \
    "t.typoutput = 'pg_catalog.jsonb_out(pg_catalog.jsonb)'::pg_catalog.regprocedure THEN 'b' " \
    "WHEN t.typcategory = "                                                                     \
    "'A' THEN 'a' ELSE 'p' END FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid)"
/* The end of the JSON value starting at s[i] (past a string, object or array; at the ',' or the
 * closing bracket after a scalar), or 0 when it does not end (pin_json.c). */
size_t pin_json_value_end(const uint8_t *s, size_t len, size_t i);
/* Does st name the column col (INSERT/COPY column list, UPDATE SET target)? */
bool pin_stmt_names_col(const struct pin_stmt *st, const char *col);
/* Why writes of a view or foreign table, or of a table with rules, cannot be pinned. */
extern const char pin_blocked_not_table[];
extern const char pin_blocked_rules[];
extern const char pin_blocked_triggers[];
/* A new zeroed column named name at the end of t; NULL on allocation failure. */
struct pin_column *pin_table_add_column(struct pin_table *t, const char *name);
/* What the walk of one statement found below its top node (pin_walk.c). */
struct pin_walk {
    const struct classify_options *opt;
    struct classify_node_flags f;
    bool order_undefined; /* LIMIT/OFFSET, SKIP LOCKED, ctid */
    bool uses_default;
    int dml;     /* INSERT/UPDATE/DELETE/MERGE nodes, the top one included */
    int inserts; /* ...of which INSERT or MERGE */
    bool sets_config;
};
/* Walk node (a PgQuery__Node) and everything below it into *w (zeroed first). Returns false
 * when some of it could not be walked (when in doubt, the statement is nondeterministic). */
bool pin_walk_node(const void *node, const struct classify_options *opt, struct pin_walk *w);
/* ... and one more node (NULL: none) into *w as it is. */
bool pin_walk_more(const void *node, struct pin_walk *w);
/* The target (a PgQuery__RangeVar) of msg when it is an INSERT, UPDATE, DELETE or MERGE node
 * (a ProtobufCMessage), else NULL. */
const void *pin_dml_target(const void *msg);
/* st->reads of node (a PgQuery__Node): see pin.h. 0 or PIN_ENOMEM. */
int pin_list_reads(const void *node, struct pin_stmt *st);
/* A String node's text, or NULL for any other node (a PgQuery__Node). */
const char *pin_node_string(const void *node);

/* Analyze one statement node (a PgQuery__Node) into st (zeroed). */
int pin_analyze_node(const void *node, const struct classify_options *opt, struct pin_stmt *st);
/* Statement node (a PgQuery__Node) of sql, analyzed into st, writes inside WITH queries: place
 * them (st->outer, st->ctes) when pgdual can. 0 or PIN_ENOMEM (st as it was otherwise). */
int pin_cte_analyze(const void *node, const char *sql, const struct classify_options *opt,
                    struct pin_stmt *st);
/* Free what st owns and zero it. */
void pin_stmt_free(struct pin_stmt *st);

/* "the relation name schema.rel ("" schema: unqualified) finds another relation now than when the
 * statement holding this text was analysed" (an SQL boolean expression, NULL-free). */
void pin_put_name_moved(struct wbuf *b, const char *schema, const char *rel);

/* b's bytes as a NUL-terminated string the caller owns (free); b is left empty. NULL (and b freed)
 * when b failed to grow. */
char *pin_take_string(struct wbuf *b);
