/* protocol/pin.h: deterministic writes (DESIGN §5a), the part that only transforms SQL and bytes.
 * A write whose effect depends on values the server makes up (defaults and calls of nextval,
 * the clock, random(), uuids) or on rows it picks in an order it does not define (LIMIT, SKIP
 * LOCKED, ctid) runs on the primary with a RETURNING list of pgdual's own appended: the values
 * that decide what the secondary must store. The secondary then runs a statement built from
 * the returned rows: an INSERT ... OVERRIDING SYSTEM VALUE, an UPDATE ... FROM or a DELETE ...
 * USING over json_populate_recordset, rows matched by primary key. Pure: no I/O, no clock.
 *
 * Steps, in the order the proxy takes them:
 * 1. pin_analyze: what each statement of a text writes and whether it may need pinning;
 * 2. pin_catalog_query / pin_table_add_row: what the primary's catalog says of the target table
 *    (columns with defaults the server makes up, generated and key columns, what forbids a pin);
 * 3. pin_decide: not needed (deterministic: sent verbatim), needed, or impossible (and why);
 * 4. pin_shape_new: the RETURNING list for the primary and the secondary's statement around the
 *    rows; pin_primary_text puts the lists into the text;
 * 5. the primary's reply: pin_strip_* take pgdual's columns out of what the client sees,
 *    pin_rows_add keeps them as JSON;
 * 6. pin_substitute_query / pin_substitute_batch: what the secondary runs instead. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/classify.h"
#include "protocol/wire.h"

#define PIN_ENOMEM  (-5001)
#define PIN_EPROTO  (-5002) /* a reply message that does not have the shape pgdual asked for */
#define PIN_EPARSE  (-5003) /* the text does not parse */
#define PIN_ESHAPE  (-5004) /* the unit's bytes do not have the shape the substitution expects */
#define PIN_EOTHER  (-5005) /* a row went into another table than its name finds now */
#define PIN_ESTALE  (-5006) /* a row's columns are not the ones pgdual read from the catalog */
#define PIN_EBOUNDS (-5007) /* a row holds an array whose lower bounds are not 1 */

#define PIN_NAME_MAX 63 /* NAMEDATALEN - 1 */
typedef char pin_name[PIN_NAME_MAX + 1];

/* The statement and portal pgdual's own pinned statement uses on the secondary. */
#define PIN_SECONDARY_NAME "pgdual.pin"

enum pin_verb {
    PIN_VERB_NONE,   /* not a write pgdual could pin (SELECT, DDL, SET, ...) */
    PIN_VERB_INSERT, /* INSERT (VALUES, SELECT, DEFAULT VALUES; ON CONFLICT) */
    PIN_VERB_UPDATE,
    PIN_VERB_DELETE,
    PIN_VERB_COPY,  /* COPY ... FROM: fills defaults, never pinned */
    PIN_VERB_MERGE, /* no RETURNING in PostgreSQL 15: never pinned */
};

enum pin_conflict { PIN_CONFLICT_NONE, PIN_CONFLICT_NOTHING, PIN_CONFLICT_UPDATE };

/* One statement of a text, as far as pinning is concerned. */
struct pin_stmt {
    enum pin_verb verb;
    size_t start, end; /* its bytes in the text; end is where a RETURNING list may go */
    pin_name schema;   /* the target as written ("" when unqualified) */
    pin_name rel;
    pin_name ref; /* how the statement names the target's rows: its alias, else rel */
    /* The statement itself makes up values (see classify.h's nondeterministic rule) or picks rows
     * in an order the server does not define (LIMIT/OFFSET, SKIP LOCKED, ctid, TABLESAMPLE). */
    bool nondeterministic;
    bool uses_default; /* DEFAULT in VALUES or SET, or DEFAULT VALUES: a column default fires */
    bool user_code;    /* calls code pgdual does not know (it may write elsewhere) */
    bool runs_code;    /* it runs the code it names (a write, SELECT, DO, CALL, EXPLAIN, COPY,
                          CREATE TABLE AS, ADD COLUMN), rather than only storing it in the
                          catalog (a DEFAULT, a view, a policy, a function body) */
    bool nested_dml;   /* a data-modifying CTE: pgdual cannot see its rows */
    bool nested_insert;
    bool sql_prepare;    /* SQL PREPARE of this statement: decided now, never rewritten */
    pin_name prepared;   /* ...the name it prepares */
    pin_name executes;   /* SQL EXECUTE: the name of the statement it runs ("" otherwise) */
    bool catalog_change; /* it may change what the catalog says (DDL, SET, ...) */
    bool rolls_back;     /* COMMIT, ROLLBACK [TO], PREPARE TRANSACTION...: may end or roll back
                            (part of) the transaction, what pgdual made in it too (its table) */
    bool sets_config;    /* it calls set_config(): the session's search_path or role may change */
    bool draws;          /* it calls something that makes up a value (the clock, random(), a
                            sequence), as opposed to taking rows in an undefined order */
    bool plain_select;   /* a SELECT without INTO: stores nothing (a lock at most) */
    bool stores_values;  /* CREATE TABLE AS, SELECT INTO, ALTER TABLE ... ADD COLUMN */
    /* CREATE TABLE: the table it creates as the catalog will describe it (owned; NULL when the
     * statement does not show it all), for writes later in the same text. */
    struct pin_table *created;
    bool client_returning;
    bool in_cte; /* a data-modifying WITH query (its pinned version names the target "pgdual_t") */
    /* Its text came in a simple Query: the server analyses it right before it runs, so a name
     * in a literal ('t'::regclass) resolves as its target does, and pgdual's catalog read is the
     * current primary's. Set by the proxy after pin_analyze. */
    bool runs_now;
    /* Data-modifying WITH queries at the top of the statement, each pinned apart (a simple Query
     * only; see pin_cte.c): outer is the statement without them (owned; NULL when there are none
     * or pgdual cannot place them in the text: the flags above then cover them all). */
    struct pin_stmt *outer;
    struct pin_cte *ctes; /* owned, nctes of them */
    int nctes;
    size_t with_end; /* where the WITH list ends in the text */
    /* With ctes: every relation the statement names but its WITH queries (targets and reads, in
     * any subquery), as written; rels_failed when pgdual could not list them all. */
    struct pin_relname *rels; /* owned, nrels of them */
    int nrels;
    bool rels_failed;
    enum pin_conflict conflict;
    /* A statement that stores what it reads (a write, CREATE TABLE AS, SELECT INTO, REFRESH
     * MATERIALIZED VIEW): every relation it names but its targets, as written, names of WITH
     * queries included (owned; reads_full when more than PIN_READS_MAX). Looked up like
     * targets: a view among them whose query makes up values, a sequence, or one pgdual could
     * not look up makes the statement nondeterministic. */
    struct pin_relname *reads;
    int nreads;
    bool reads_full;
    bool refresh; /* REFRESH MATERIALIZED VIEW: reads[0] is the view it fills */
    /* INSERT/COPY: the columns named (ncols -1: none named, so every column); UPDATE: the SET
     * targets (a subscripted or field target names its column). */
    int ncols;
    pin_name *cols; /* owned */
};

/* A relation as a statement names it ("" schema: unqualified). */
struct pin_relname {
    pin_name schema, rel;
};

/* A data-modifying WITH query `name [(cols)] AS [[NOT] MATERIALIZED] (body)`. */
struct pin_cte {
    struct pin_stmt st; /* its write as a statement (target, columns, what it makes up) */
    size_t name_at;     /* its name's first byte in the text */
    size_t open, close; /* its body's parentheses */
    size_t ret_at;      /* its RETURNING keyword, 0 when none */
    size_t list_at;     /* its RETURNING list */
    /* Its RETURNING list reads the written row alone (no FROM/USING, no whole-row reference, no
     * system column, no three-part name): it can be evaluated again over the row's copy. */
    bool list_ok;
};

struct pin_plan {
    struct pin_stmt *stmts; /* owned, one per statement of the text */
    int n;
};

/* Analyze every statement of sql. Returns 0, PIN_EPARSE or PIN_ENOMEM (*out then empty). */
int pin_analyze(const char *sql, const struct classify_options *opt, struct pin_plan *out)
    __attribute__((warn_unused_result));
/* The table an earlier statement of p creates under statement i's target name, or NULL. */
struct pin_table;
const struct pin_table *pin_plan_created(const struct pin_plan *p, int i);
void pin_plan_free(struct pin_plan *p);

/* ---- the target table, from the primary's catalog ---- */

/* A column's values that to_json(t.*) cannot carry to the secondary exactly (pin_values.c): the
 * column's type, or its domain's base type. */
enum pin_value_kind {
    PIN_VALUE_PLAIN = 0,
    PIN_VALUE_JSON,  /* json: a JSON null prints as an SQL NULL does */
    PIN_VALUE_JSONB, /* jsonb: likewise */
    PIN_VALUE_ARRAY, /* an array: its lower bounds (such a row is not pinned: counted) */
};

struct pin_column {
    pin_name name;
    bool generated;        /* GENERATED ALWAYS AS (...) STORED: never inserted */
    bool volatile_default; /* identity, or a default that makes up values (nextval, now(), ...);
                            * never a generated column (its expression is immutable) */
    bool identity;         /* GENERATED ... AS IDENTITY: an upsert never sets it */
    bool pk;
    enum pin_value_kind kind; /* what the row's JSON cannot carry of its values (pin_values.c) */
};

/* pg_trigger.tgtype's event bits. */
#define PIN_TRIG_INSERT (1u << 2)
#define PIN_TRIG_DELETE (1u << 3)
#define PIN_TRIG_UPDATE (1u << 4)

struct pin_table {
    bool found;
    /* The columns' kinds are the catalog's (not a CREATE TABLE's in the same text, which cannot
     * see through a domain): the primary may check them at each execution (pin_shape's kinds). */
    bool kinds_known;
    char qname[2 * (2 * PIN_NAME_MAX + 2) + 2]; /* "schema"."rel" as the catalog found it (logs) */
    const char *blocked; /* why no write of it can be pinned (a static string), or NULL */
    /* The events (PIN_TRIG_*) for which an enabled user trigger of the table (or of a partition)
     * may make up values (trig_values) or write other tables (trig_writes): its function is not
     * PL/pgSQL, or its source names a value-making call (now, nextval, random, ...) or a write
     * (INSERT, UPDATE, DELETE, MERGE, COPY, EXECUTE). See pin_catalog_query. */
    unsigned trig_values, trig_writes;
    /* 'r', 'p', 'v', 'm', ... as pg_class.relkind says. A view's or materialized view's query,
     * and those of the views it reads (followed through views, not through stored data), make up
     * values or take them in an order the server does not define (def_values), or call code
     * pgdual cannot see into (def_code): a write reading the view stores them (pin.c's
     * pin_plan_apply_reads). */
    char relkind;
    bool def_values, def_code;
    int ncols, npk;
    struct pin_column *cols; /* owned */
};

/* The catalog lookup for st's target, as one SQL text into out (NUL-terminated, no Query
 * header). Its rows, one per column, go to pin_table_add_row in order; none: not found. */
int pin_catalog_query(const struct pin_stmt *st, struct wbuf *out)
    __attribute__((warn_unused_result));
/* One DataRow body of that lookup. opt classifies the defaults. PIN_EPROTO or PIN_ENOMEM. */
int pin_table_add_row(struct pin_table *t, const uint8_t *body, size_t len,
                      const struct classify_options *opt) __attribute__((warn_unused_result));
/* A deep copy of src into dst (uninitialized). PIN_ENOMEM leaves dst empty. */
int pin_table_copy(struct pin_table *dst, const struct pin_table *src)
    __attribute__((warn_unused_result));
void pin_table_free(struct pin_table *t);

/* ---- the decision ---- */

enum pin_need {
    PIN_NOT_NEEDED, /* deterministic: the secondary runs it verbatim */
    PIN_NEEDED,
    PIN_IMPOSSIBLE, /* it makes up values but cannot be pinned: *why says why */
};

/* Why a write into a table whose trigger may make up values or write elsewhere is not pinned, and
 * why a statement running code pgdual cannot see into is not (pin_decide's *why, compared by
 * pointer): the last two owe every table to the reconciliation. */
extern const char pin_why_trigger_values[];
extern const char pin_why_trigger_writes[];
extern const char pin_why_user_code[];

#define PIN_READS_MAX 32

/* A read relation's lookup for st->reads[i]; NULL: pgdual could not look it up (the statement
 * is then pinned as if the relation made up values). */
typedef const struct pin_table *(*pin_read_lookup)(void *ctx, const struct pin_relname *r);
/* Make st (and its outer statement and WITH queries) nondeterministic, or user code, where a
 * view it reads (or the materialized view a REFRESH fills) has a query that is: known(ctx, r)
 * says what the catalog said of each. */
void pin_stmt_apply_reads(struct pin_stmt *st, pin_read_lookup known, void *ctx);

/* t: the target as the catalog describes it (NULL when unknown). *why is a static string. */
enum pin_need pin_decide(const struct pin_stmt *st, const struct pin_table *t, const char **why);

/* What pinning one statement takes, shared (refcounted) by the prepared statement and the
 * portals and executions that use it. */
struct pin_shape {
    int refs;
    enum pin_verb verb;
    bool client_returning;
    /* Columns pgdual appends to the primary's RETURNING: two (three with extras, below). The
     * whole row as JSON (to_json(t.*): dates and times in ISO form whatever DateStyle says, json
     * values as they are), which the secondary reads back by column name; and whether the row went
     * into the table the client's name finds now on the primary, or a partition of it. The
     * secondary's statement names the table as the client wrote it, and pgdual prepares it there at
     * the statement's first pinned Execute, later than the client's Parse: by then the name may
     * find another table (a temporary table made since, or one another session made in an earlier
     * schema of search_path) while PostgreSQL keeps the prepared statement's table. Such rows are
     * not pinned (counted). A change of search_path makes PostgreSQL resolve both sides' statements
     * again: the check then still holds. */
    int m;
    /* The table's columns when pgdual read the catalog (pin_columns_hash): a row whose JSON has
     * other keys comes from a table changed since (PIN_ESTALE). */
    uint64_t columns_hash;
    /* The columns among keys whose values the row's JSON cannot carry (pin_values.c). When
     * there are any, m is 3: the row's text (record_out) comes third, and the secondary gets
     * each row as [row, extras]. */
    int nfields; /* the table's columns: the fields of the row's text */
    /* The kinds of the table's columns when pgdual read the catalog ("pjbap": pin_value_kind's
     * letters, PIN_COLUMN_KIND), which the primary checks at each execution (a prepared statement
     * outlives an ALTER ... TYPE or a change of search_path): pgdual's second column is then 's'
     * where a kind differs (PIN_ESTALE). Kinds, not type OIDs: an int made bigint changes nothing
     * pinning depends on, and a user type's OID differs between the two servers (a statement
     * prepared before SET primary = new runs on after it). NULL: not known (a table created in
     * the same text) or a WITH query's shape, not checked. */
    char *kinds;
    /* A data-modifying WITH query's shape (in_cte) has no extras: its rows come back through
     * pgdual's table as JSON, with the row's text beside them when the shape has json_cols, its
     * json/jsonb columns among keys (nfields: the table's columns). A row holding a JSON null in
     * one of them, or a json scalar, is not pinned (pin_values_readback); an SQL NULL is. An
     * array's bounds are not seen there (documented). */
    int njson_cols;
    struct pin_extra *json_cols;
    int nextras;
    struct pin_extra {
        int field; /* its index among the row's fields */
        enum pin_value_kind kind;
        pin_name name;
    } * extras;        /* owned, in field order */
    int nkeys;         /* the columns the secondary's statement stores or matches on */
    pin_name *keys;    /* their names (nkeys) */
    char *returning;   /* the text appended at the statement's end */
    char *head, *tail; /* the secondary's statement: head, the rows as JSON, tail */
    /* The session's use of it on the secondary (proxy/dualwrite/pin_reply.c): prepared there as
     * PIN_SECONDARY_NAME.sec_stmt_id while sec_epoch is the session's. */
    uint32_t sec_stmt_id;
    uint64_t sec_epoch;
};

/* NULL on allocation failure. st, t: pin_decide said PIN_NEEDED. */
struct pin_shape *pin_shape_new(const struct pin_stmt *st, const struct pin_table *t);
struct pin_shape *pin_shape_ref(struct pin_shape *sh);
void pin_shape_unref(struct pin_shape *sh);

/* sql with shapes[i]->returning appended to statement i of plan where shapes[i] is not NULL,
 * into out (NUL-terminated). */
int pin_primary_text(const char *sql, const struct pin_plan *plan, struct pin_shape *const *shapes,
                     struct wbuf *out) __attribute__((warn_unused_result));

/* ---- the primary's reply ---- */

/* A RowDescription (body) without its last m columns, as a whole message into out: NoData when
 * none remain and nodata_if_empty (a Describe's answer), else nothing at all. */
int pin_strip_row_description(const uint8_t *body, size_t len, int m, bool nodata_if_empty,
                              struct wbuf *out) __attribute__((warn_unused_result));
/* A DataRow (body) without its last m values, as a whole message into out; nothing when none
 * remain. */
int pin_strip_data_row(const uint8_t *body, size_t len, int m, struct wbuf *out)
    __attribute__((warn_unused_result));
/* The last sh->m values of a DataRow (body, text format) as one JSON object appended to rows (a
 * JSON array being built: "[" first, "," between; pin_rows_close ends it). PIN_EOTHER when the
 * row did not go into the table the secondary's statement names, PIN_ESTALE when its columns
 * are not sh's table's (nothing appended). */
int pin_rows_add(struct wbuf *rows, const struct pin_shape *sh, const uint8_t *body, size_t len)
    __attribute__((warn_unused_result));
void pin_rows_close(struct wbuf *rows);
/* ---- values the row's JSON cannot carry (pin_values.c) ---- */

/* sh's extras for st of t. 0 or PIN_ENOMEM. */
int pin_values_plan(struct pin_shape *sh, const struct pin_stmt *st, const struct pin_table *t)
    __attribute__((warn_unused_result));
/* The secondary's expression for column col of the row (sh with extras). */
void pin_values_put_expr(struct wbuf *b, const struct pin_shape *sh, const char *col);
/* The row json (to_json) and its text rec (record_out) as [json, extras], appended to rows as
 * pin_rows_add appends. PIN_EPROTO (rows as it was) or PIN_ENOMEM. */
int pin_values_add(struct wbuf *rows, const struct pin_shape *sh, const uint8_t *json,
                   size_t json_len, const uint8_t *rec, size_t rec_len)
    __attribute__((warn_unused_result));

/* A row read back from pgdual's table for a WITH query of shape sh (pin_cte.c): the row's
 * JSON, or [JSON, its text] when sh has json_cols. *row, *row_len: the JSON object; *json_null:
 * a json/jsonb column of it holds a value the secondary would not store as old holds it (a JSON
 * null; a json column's top-level scalar or its text with white space around). PIN_EPROTO when r
 * has neither form. */
int pin_values_readback(const struct pin_shape *sh, const uint8_t *r, size_t len,
                        const uint8_t **row, size_t *row_len, bool *json_null)
    __attribute__((warn_unused_result));
/* The names of t's columns, in order, as to_json prints them (pin_json.c). */
uint64_t pin_columns_hash(const struct pin_table *t);
/* The same of the keys of one JSON object, as the server's to_json wrote it. PIN_EPROTO. */
int pin_json_keys_hash(const uint8_t *json, size_t len, uint64_t *hash)
    __attribute__((warn_unused_result));

/* ---- data-modifying WITH queries (pin_cte.c) ---- */

/* pgdual's temporary table on the primary: the rows of the WITH queries it pins are recorded
 * there by the statement itself (one more WITH query of pgdual's), and read back (and deleted)
 * by pgdual right after it, before the secondary gets the unit. */
/* Granted to PUBLIC (in a block of its own: a refused GRANT keeps the table): a later SET ROLE /
 * SET SESSION AUTHORIZATION in the session must not make the client's statement fail on it. */
/* Made only when it is not there: run again over the table, its GRANT would invalidate every
 * statement of pgdual's naming it (re-analysed at their next Bind). */
#define PIN_CTE_CREATE                                                                            \
    "DO $pgdual$BEGIN IF pg_catalog.to_regclass('pg_temp.pgdual_pin_rows') IS NULL THEN CREATE "  \
    "TEMP TABLE pgdual_pin_rows (n integer NOT NULL, r json NOT NULL); BEGIN GRANT SELECT, "      \
    "INSERT, DELETE ON pg_temp.pgdual_pin_rows TO PUBLIC; EXCEPTION WHEN OTHERS THEN NULL; END; " \
    "END IF; EXCEPTION WHEN OTHERS THEN NULL; END$pgdual$"
/* One row: the table's OID when it is there and the current role may use it, else NULL. */
#define PIN_CTE_CHECK                                                                              \
    "SELECT CASE WHEN c IS NOT NULL AND pg_catalog.has_table_privilege(c, 'SELECT') AND "          \
    "pg_catalog.has_table_privilege(c, 'INSERT') AND pg_catalog.has_table_privilege(c, 'DELETE') " \
    "THEN c::pg_catalog.oid END FROM pg_catalog.to_regclass('pg_temp.pgdual_pin_rows') AS c"
/* PIN_CTE_CHECK's row (a DataRow body, text): the OID. PIN_EPROTO: NULL or not one. */
int pin_cte_check_row(const uint8_t *body, size_t len, uint32_t *oid)
    __attribute__((warn_unused_result));
#define PIN_CTE_READBACK "DELETE FROM pg_temp.pgdual_pin_rows RETURNING n, r"

#define PIN_TMPL_OUTER UINT32_MAX /* a template slot holding the outer statement's rows */

/* The secondary's version of a statement with pinned WITH queries: pieces[0], rows of
 * slots[0], pieces[1], ..., pieces[n]. */
struct pin_tmpl {
    int n;
    char **pieces;   /* owned, n + 1 */
    uint32_t *slots; /* owned, n: a WITH query's slot number, or PIN_TMPL_OUTER */
};
void pin_tmpl_free(struct pin_tmpl *t);

/* May st's WITH query c be pinned (pin_decide on it is PIN_NEEDED): its RETURNING list can be
 * evaluated again and its body is placed? *why when not (static). */
bool pin_cte_placeable(const struct pin_stmt *st, const struct pin_cte *c, const char **why);
/* Statement st of sql (st->outer and st->ctes set) with each WITH query c whose shapes[c] is
 * not NULL pinned (slot slot_base + the number of pinned ones before it, recorded in pgdual's
 * table as rec_first + the same number: a number the session never used for another unit, so a
 * row a ROLLBACK TO brought back is told from this unit's) and, with outer not NULL, the outer
 * statement's RETURNING list appended: the primary's text of it (replacing st->start..st->end,
 * appended to primary) and the secondary's template (tmpl, empty first). */
int pin_cte_build(const char *sql, const struct pin_stmt *st, struct pin_shape *const *shapes,
                  const struct pin_shape *outer, uint32_t slot_base, uint32_t rec_first,
                  struct wbuf *primary, struct pin_tmpl *tmpl) __attribute__((warn_unused_result));
/* pin_cte_build, but with rec_param not 0 the primary's text records slot slot_base + j under
 * `$<rec_param> + j` (a statement prepared once and bound with rec_first each time). */
int pin_cte_build_at(const char *sql, const struct pin_stmt *st, struct pin_shape *const *shapes,
                     const struct pin_shape *outer, uint32_t slot_base, uint32_t rec_first,
                     uint32_t rec_param, struct wbuf *primary, struct pin_tmpl *tmpl)
    __attribute__((warn_unused_result));
/* One row of PIN_CTE_READBACK (a DataRow body, text): its slot and JSON object; moved: it is the
 * mark of a prepared statement whose target name finds another table now (pin_cte_build_at with
 * rec_param), not a row. PIN_EPROTO. */
int pin_cte_readback_row(const uint8_t *body, size_t len, uint32_t *slot, bool *moved,
                         const uint8_t **json, size_t *json_len)
    __attribute__((warn_unused_result));

/* ---- what the secondary runs ---- */

/* One pinned statement of a unit for the secondary. */
struct pin_subst {
    uint32_t index;    /* Query: statement number; batch: Execute number (from 0) */
    size_t start, end; /* Query: the statement's bytes in the text */
    const struct pin_shape *shape;
    const struct wbuf *rows; /* the closed JSON array */
    /* Batch: the secondary's statement is prepared as PIN_SECONDARY_NAME "." stmt_id; parse: it
     * is not there yet (Close and Parse it first), else Bind it again. */
    uint32_t stmt_id;
    bool parse;
    /* Query: a statement with pinned WITH queries is tmpl, filled with rows (PIN_TMPL_OUTER) and
     * slot_rows[slot] (closed JSON arrays); shape is then unused. Batch: with cte set, an Execute
     * of a statement with pinned WITH queries (pin_cte_ext_execute: tmpl, slot_rows, rows for
     * PIN_TMPL_OUTER, the parameter types the client's Parse declared); shape may be NULL. */
    const struct pin_tmpl *tmpl;
    const struct wbuf *slot_rows;
    uint32_t nslot_rows; /* batch, cte: how many slot_rows there are */
    const struct pin_cte_stmt *cte;
};

struct pin_cte_stmt;

/* The Query message (whole, header included) with each pinned statement replaced by its
 * deterministic version (rows inlined as a literal), into out as a whole Query message. s sorted
 * by index. */
int pin_substitute_query(const uint8_t *msg, size_t len, const struct pin_subst *s, size_t n,
                         struct wbuf *out) __attribute__((warn_unused_result));
/* An extended batch (whole messages) with each pinned Execute replaced by the deterministic
 * version: Close of the portal PIN_SECONDARY_NAME, (when s.parse: Close and Parse of the statement
 * PIN_SECONDARY_NAME.stmt_id,) Bind of the portal to it (the rows as a json parameter) and
 * Execute, into out. *extra_steps: the steps the replacements added (2 each, 4 with a Parse). */
int pin_substitute_batch(const uint8_t *msgs, size_t len, const struct pin_subst *s, size_t n,
                         struct wbuf *out, uint32_t *extra_steps)
    __attribute__((warn_unused_result));

/* ---- data-modifying WITH queries through the extended protocol (pin_cte_ext.c) ---- */

/* The statement pgdual runs on the secondary in place of an Execute (Close, Parse, Bind). On the
 * primary pgdual prepares its own statement per client statement, PIN_CTE_OWN_PREFIX and a number
 * the session never used before, right behind the client's Parse (pin_cte_ext_own_parse). */
#define PIN_CTE_STMT_NAME  "pgdual.cte"
#define PIN_CTE_OWN_PREFIX "pgdual.cte."
#define PIN_CTE_OWN_MAX    32 /* its name's bytes, NUL included */

/* What pgdual knows of its own statement on the primary (pin_cte_stmt.own_state). */
enum pin_own_state {
    PIN_OWN_NONE, /* never sent: the client's Binds go verbatim (counted) */
    PIN_OWN_SENT, /* sent behind the client's Parse by unit own_serial, not answered yet */
    PIN_OWN_MADE, /* its ParseComplete came */
    PIN_OWN_LOST  /* not made (the client's Parse failed), closed, or maybe gone */
};

/* A client's prepared statement whose data-modifying WITH queries pgdual may pin at each of its
 * Binds (decided at its Parse, which goes verbatim to both sides): the client's text and its
 * analysis, which WITH queries are pinned (shapes[k], NULL when not) and the outer statement's
 * shape (NULL when it makes up nothing), the parameter types the Parse declared, and pgdual's own
 * statement on the primary, parsed right behind the client's (own...). Refcounted: the prepared
 * statement and the portals bound to it share it. */
struct pin_cte_stmt {
    int refs;
    char *sql;
    struct pin_plan plan; /* one statement, with outer and ctes placed */
    struct pin_shape **shapes;
    int nshapes;
    struct pin_shape *outer;
    uint32_t nslots;    /* WITH queries pinned (slots one execution takes) */
    uint8_t *types_msg; /* the Parse's parameter type list as sent (count, OIDs) */
    size_t types_len;
    uint32_t *types; /* ...decoded, ntypes of them */
    uint16_t ntypes;
    char own[PIN_CTE_OWN_MAX]; /* pgdual's statement on the primary ("" none) */
    enum pin_own_state own_state;
    uint16_t own_k;      /* the client's statement's parameters; pgdual's has one more */
    int own_primary;     /* the backend it was parsed on */
    uint32_t own_serial; /* the unit that sent it */
    uint32_t own_table;  /* pgdual's table's OID then (0: the statement needs none) */
    uint64_t own_gen;    /* the session's statement generation then (DEALLOCATE/DISCARD ALL) */
    uint64_t sec_epoch;  /* the session's epoch for the secondary's statement then */
};

/* A new statement (refs 1) taking plan (moved: *plan is left empty) and references on shapes
 * (n) and outer; sql and the Parse's type list (types_msg, types_len: count then OIDs) copied.
 * NULL on allocation failure or a type list that does not decode (plan then freed). */
struct pin_cte_stmt *pin_cte_stmt_new(const char *sql, struct pin_plan *plan,
                                      struct pin_shape *const *shapes, int n,
                                      struct pin_shape *outer, const uint8_t *types_msg,
                                      size_t types_len);
/* The records one execution of cs takes in pgdual's table: a slot per pinned WITH query, or one
 * for the mark alone when only its outer statement is pinned (0: it needs no table). */
uint32_t pin_cte_records(const struct pin_cte_stmt *cs);
struct pin_cte_stmt *pin_cte_stmt_ref(struct pin_cte_stmt *cs);
void pin_cte_stmt_unref(struct pin_cte_stmt *cs);

/* One execution of cs whose slots are slot_base... (recorded as rec_first...): the primary's
 * text as pin_cte_build writes it (a whole Parse text, NUL-terminated, into text) and the
 * secondary's template (tmpl, empty first). */
int pin_cte_ext_build(const struct pin_cte_stmt *cs, uint32_t slot_base, uint32_t rec_first,
                      struct wbuf *text, struct pin_tmpl *tmpl) __attribute__((warn_unused_result));
/* pgdual's own statement for cs on the primary, sent right behind the client's Parse: a Parse of
 * name with cs's text rewritten (slots from 0, the record numbers as `$<K+1> + j`), $1..$K typed
 * as the client's Parse declared them (K: the declared types or the highest $n the text names,
 * the more; cs->own_k set to it) and $<K+1> int4, into out. PIN_ESHAPE: a text pgdual cannot
 * rewrite or scan. */
int pin_cte_ext_own_parse(struct wbuf *out, struct pin_cte_stmt *cs, const char *name)
    __attribute__((warn_unused_result));
/* A Close of the statement name, into out. */
void pin_cte_ext_close(struct wbuf *out, const char *name);
/* What the primary gets in place of the client's Bind (body bind, bind_len) of cs: a Bind of the
 * client's portal to pgdual's own statement (name), the client's parameters and formats as they
 * are followed by rec_first (text), and with the outer statement pinned text results for pgdual's
 * column, into out. PIN_ESHAPE: a Bind pgdual cannot read, one whose parameter count is not
 * cs->own_k, or one asking binary results for all columns while the client has columns of its
 * own. */
int pin_cte_ext_primary(struct wbuf *out, const struct pin_cte_stmt *cs, const char *name,
                        uint32_t rec_first, const uint8_t *bind, size_t bind_len)
    __attribute__((warn_unused_result));
/* The secondary's version of an Execute of cs, its portal bound by the client's Bind (bind,
 * bind_len: its body): Close of the client's portal, Close and Parse of the statement
 * PIN_CTE_STMT_NAME (tmpl with its j-th slot as $<K+1+j>::json, K the Bind's parameter count;
 * $1..$K typed as the client's Parse declared them, one it left open and the template does not
 * use as text or bytea by its format), Bind of the client's portal to it (the client's parameters
 * and formats, then one text json parameter per slot: slot_rows[slot], outer for PIN_TMPL_OUTER;
 * the client's result formats unless the outer statement is pinned) and Execute, into out.
 * PIN_ESHAPE on a Bind pgdual cannot read or a slot it has no rows for. */
int pin_cte_ext_execute(struct wbuf *out, const struct pin_cte_stmt *cs,
                        const struct pin_tmpl *tmpl, const uint8_t *bind, size_t bind_len,
                        const struct wbuf *slot_rows, uint32_t nslot_rows, const struct wbuf *outer)
    __attribute__((warn_unused_result));
/* Might the secondary's version (tmpl) infer a parameter's type otherwise than the primary's text
 * (primary, NUL-terminated)? So it may for a parameter the client's Parse left open (types,
 * ntypes) that the template still uses, but not everywhere the primary's text does: a use inside
 * a pinned WITH write (gone on the secondary) typed it there. 1: it may, 0: no, PIN_ESHAPE: a
 * text does not scan, PIN_ENOMEM. */
int pin_cte_ext_open_param(const char *primary, const struct pin_tmpl *tmpl, const uint32_t *types,
                           uint16_t ntypes) __attribute__((warn_unused_result));
/* The portal a Bind (body) names, or NULL. */
const char *pin_cte_ext_bind_portal(const uint8_t *bind, size_t bind_len);
