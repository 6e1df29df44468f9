/* protocol/classify.h: decides from libpg_query's parse tree whether a statement is a routed read
 * or must be mirrored, and flags nondeterminism. Pure: no I/O, no clock, no globals.
 *
 * Rules (DESIGN §3; when in doubt: mirror):
 * - READ only if every statement is one of: SelectStmt (incl. VALUES, TABLE, set operations),
 *   SHOW, EXPLAIN without ANALYZE whose inner statement is itself a READ, or COPY ... TO STDOUT
 *   of a relation or of a READ query; and, anywhere in the tree, there is no INTO clause, no
 *   locking clause (FOR UPDATE/SHARE/...), no INSERT/UPDATE/DELETE/MERGE (data-modifying CTE),
 *   no CTE whose query is not a SELECT, and every function call is known side-effect free
 *   (built-in table in classify_funcs.c, or the read_only_functions option).
 * - Everything else, including anything that does not parse, is MIRROR.
 * - An empty string (or only comments) has no statements and is a READ: nothing executes.
 * Limits the parse tree cannot see (catalog knowledge): views, operators, casts and functional
 * notation (t.f meaning f(t)) that call volatile functions; column defaults (serial/identity)
 * and triggers. Reads through such objects are caught later by the shadow compare; writes are
 * mirrored anyway. Trees nested deeper than about 1000 expression levels are mirrored.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes returned by this module (negative, libuv style). */
#define CLASSIFY_EINVAL (-3001) /* NULL argument */
#define CLASSIFY_ENOMEM (-3002) /* allocation or protobuf unpack failed */
#define CLASSIFY_EPARSE (-3003) /* the text does not parse */
#define CLASSIFY_E2BIG  (-3004) /* more effects than the caller's array holds */

/* Statements longer than this are classified but never cached. */
#define CLASSIFY_CACHE_MAX_TEXT 8192

enum classify_kind {
    CLASSIFY_READ,   /* proven read without side effects: one backend may serve it */
    CLASSIFY_MIRROR, /* sent to both backends */
};

/* Transaction-control verb of one statement. START -> BEGIN, END -> COMMIT, ABORT -> ROLLBACK;
 * PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK PREPARED are OTHER. */
enum classify_txn {
    CLASSIFY_TXN_NONE, /* not a transaction-control statement */
    CLASSIFY_TXN_BEGIN,
    CLASSIFY_TXN_COMMIT,
    CLASSIFY_TXN_ROLLBACK,
    CLASSIFY_TXN_SAVEPOINT,
    CLASSIFY_TXN_RELEASE,
    CLASSIFY_TXN_ROLLBACK_TO,
    CLASSIFY_TXN_OTHER,
};

struct classify_result {
    enum classify_kind kind; /* READ only if every statement is a proven read */
    /* Nondeterminism rule: set only for what the parse tree shows, anywhere in any statement:
     * calls of now, clock_timestamp, statement_timestamp, transaction_timestamp, timeofday,
     * random, gen_random_uuid, uuid_generate_v1/v1mc/v4, nextval, currval, lastval, and of
     * functions whose value differs between the backends or over time (version, pg_*_size,
     * age); see classify_funcs.c; CURRENT_DATE/CURRENT_TIME/CURRENT_TIMESTAMP/LOCALTIME/
     * LOCALTIMESTAMP; TABLESAMPLE; and the string literals 'now'/'today'/'tomorrow'/'yesterday'
     * cast to a type. Row order without ORDER BY is the compare's concern, not flagged.
     * A serial or identity default that fires on INSERT is NOT flagged: whether a column has
     * one needs the catalog, so it is detected later by comparing RETURNING/row hashes. */
    bool nondeterministic;
    bool parse_error;      /* did not parse: mirrored, the primary's error reaches the client */
    bool txn_control;      /* some statement is BEGIN/COMMIT/ROLLBACK/SAVEPOINT/... */
    enum classify_txn txn; /* verb of the first statement (NONE if not txn control) */
    enum classify_txn txn_last; /* verb of the last statement (== txn for one statement) */
    bool is_listen;    /* some statement is LISTEN or UNLISTEN: primary only (DESIGN §4) */
    bool is_copy_from; /* some statement is COPY ... FROM STDIN (client streams data to both) */
    bool is_copy_to;   /* some statement is COPY ... TO STDOUT (a read when its source is) */
    /* Every statement is SELECT/INSERT/UPDATE/DELETE/MERGE (none is COPY, DDL, utility or
     * transaction control): the string may run inside a transaction block unchanged, so pgdual
     * may wrap an autocommit write in BEGIN/COMMIT on the primary (lockstep ordering). */
    bool dml_only;
    /* Some statement (any, not only the first or last) is COMMIT/END or PREPARE TRANSACTION /
     * COMMIT PREPARED / ROLLBACK PREPARED: running it releases the primary's row locks. */
    bool commits;
    /* Some statement is INSERT, MERGE or COPY FROM (anywhere, CTEs included): a column default
     * (serial, identity, nextval) may draw a value the server makes up, even when it fails. */
    bool inserts;
    /* Every statement would be a proven read but for a locking clause (SELECT ... FOR UPDATE /
     * SHARE, SKIP LOCKED, NOWAIT): mirrored (its locks matter) but it changes no data, so rows
     * or tags that differ between the backends (a queue pop picking another row) are not a
     * difference in the data. */
    bool lock_only_read;
    /* Some statement runs code pgdual does not know: DO, CALL, or a call of a function that is
     * in neither the built-in table nor read_only_functions. Such code may do anything the
     * parse tree cannot show: draw sequence values, PREPARE / DEALLOCATE / CLOSE / OPEN named
     * statements and cursors through SPI. (Triggers of a DML statement are not seen: the catalog
     * would tell.) */
    bool user_code;
    /* Some statement creates or drops a prepared statement or a portal by name: PREPARE,
     * DEALLOCATE [ALL], DISCARD ALL, DECLARE (a cursor is a portal), CLOSE [ALL]. The names are
     * read with classify_effects (rare, so not cached). */
    bool session_objects;
    /* Every statement leaves the catalog as a session sees it alone: DML, transaction control,
     * SHOW, COPY, EXPLAIN, LOCK, PREPARE/EXECUTE/DEALLOCATE, cursors, LISTEN/NOTIFY, VACUUM/ANALYZE
     * (not DDL, GRANT, SET/RESET/DISCARD, DO/CALL, nor code pgdual does not know). */
    bool catalog_safe;
    /* Not catalog_safe only for SET / RESET statements (no DDL, no code pgdual cannot see). */
    bool settings_only;
    int nstatements;      /* statements in the string; 0 for empty/comments or a parse error */
    uint64_t fingerprint; /* libpg_query fingerprint of the whole string (0 on parse error) */
};

/* Extra functions the operator declares side-effect free. Names are matched exactly as the
 * parser folds them (unquoted identifiers are lower case): "f" matches an unqualified call f(),
 * "s.f" matches only the qualified call s.f(). Borrowed for the duration of each call. */
struct classify_options {
    const char *const *read_only_functions;
    size_t n_read_only_functions;
};

/* Classify one simple-query string (NUL-terminated). opt may be NULL. Returns 0 and fills *out
 * (a parse error is a result: MIRROR + parse_error, return 0). On a negative return *out is
 * still filled with a conservative MIRROR result. */
int classify_statement(const char *sql, const struct classify_options *opt,
                       struct classify_result *out) __attribute__((warn_unused_result));

/* What one statement does to the session's named objects (see classify_effects). */
enum classify_effect_kind {
    CLASSIFY_EFFECT_PREPARE,        /* PREPARE name AS ...: statement name now exists */
    CLASSIFY_EFFECT_DEALLOCATE,     /* DEALLOCATE name: statement name is gone */
    CLASSIFY_EFFECT_DEALLOCATE_ALL, /* DEALLOCATE ALL: every prepared statement is gone */
    CLASSIFY_EFFECT_DISCARD_ALL,    /* DISCARD ALL: every prepared statement and portal is gone */
    CLASSIFY_EFFECT_DECLARE,        /* DECLARE name CURSOR: portal name now exists */
    CLASSIFY_EFFECT_CLOSE,          /* CLOSE name: portal name is gone */
    CLASSIFY_EFFECT_CLOSE_ALL,      /* CLOSE ALL: every portal is gone */
};

/* Names are as the parser leaves them: unquoted identifiers folded to lower case and cut to
 * NAMEDATALEN - 1 = 63 bytes, as the server does. */
#define CLASSIFY_NAME_MAX 63

struct classify_effect {
    int stmt; /* index of the statement in the string, from 0 */
    enum classify_effect_kind kind;
    char name[CLASSIFY_NAME_MAX + 1]; /* "" for the _ALL kinds */
    /* PREPARE: the statement is not a SELECT that stores nothing (one with INTO, or with a
     * data-modifying WITH query, stores; FOR UPDATE/SHARE only locks): it may write when
     * executed */
    bool may_write;
};

/* The effects of sql's statements on named statements and portals, in statement order, into
 * out[0 .. cap); *n is their number. Statements without such an effect add nothing. Returns 0,
 * CLASSIFY_EPARSE when sql does not parse, CLASSIFY_E2BIG when there are more than cap (*n is
 * then cap), CLASSIFY_ENOMEM or CLASSIFY_EINVAL. */
int classify_effects(const char *sql, struct classify_effect *out, size_t cap, size_t *n)
    __attribute__((warn_unused_result));

/* Every field of a and b equal (the cache and the fuzz target check their answers with it). */
bool classify_result_equal(const struct classify_result *a, const struct classify_result *b);

/* Normalized text with literals replaced by $n (pg_query_normalize); caller frees with free().
 * NULL on failure (including text that does not parse). */
char *classify_normalize(const char *sql);

/* What one parse-tree node (a libpg_query protobuf message, not its children) shows by the rules
 * above: a nondeterministic call or value, code pgdual does not know. ORed into *f. For
 * protocol/pin.c, which walks statements itself. */
struct classify_node_flags {
    bool nondeterministic;
    bool user_code;
};
void classify_node(const void *node, const struct classify_options *opt,
                   struct classify_node_flags *f);
/* Does one top-level statement node (a libpg_query protobuf Node) leave the catalog as it was?
 * (classify_result.catalog_safe's rule, without the user-code part.) */
bool classify_node_catalog_safe(const void *node);

/* ---- function knowledge (classify_funcs.c) ------------------------------------------------ */

/* Flags of a function name as far as classification is concerned. */
#define CLASSIFY_FUNCS_READ   0x1u /* side-effect free: may appear in a routed read */
#define CLASSIFY_FUNCS_NONDET 0x2u /* result differs between calls/backends */
#define CLASSIFY_FUNCS_KNOWN  0x4u /* built in, not a read, but not code of the user's */

/* Flags for a call of schema.name (schema NULL when unqualified). The built-in table applies to
 * unqualified and pg_catalog-qualified calls; opt's list as described at classify_options.
 * Unknown functions get 0 (not READ). */
unsigned classify_funcs_flags(const char *schema, const char *name,
                              const struct classify_options *opt);

/* ---- cache (classify_cache.c) ------------------------------------------------------------- */

/* Bounded cache of results keyed by the statement's literal-insensitive key (protocol/sql_key.h:
 * constants of DML statements folded, whitespace and comments folded), or by the full text when
 * the text has no key. A result is stored under a key only if it holds for every text with that
 * key, fingerprint included (libpg_query's fingerprint ignores the folded constants). Per event
 * loop, NOT thread-safe: each
 * worker owns one. Eviction is CLOCK (second chance): a hit sets the entry's reference bit, and
 * when the cache is full the hand clears bits until it finds an unreferenced entry to replace.
 * A cache remembers the options pointer it was last used with; passing another pointer clears
 * it (the read_only_functions list changed), so results never outlive the list they used. */
struct classify_cache;

/* max_entries >= 1. NULL on allocation failure. */
struct classify_cache *classify_cache_new(size_t max_entries);
void classify_cache_free(struct classify_cache *c);
/* Like classify_statement, served from the cache when the same text was classified before.
 * Texts longer than CLASSIFY_CACHE_MAX_TEXT bytes are classified without caching. */
int classify_cached(struct classify_cache *c, const char *sql, const struct classify_options *opt,
                    struct classify_result *out) __attribute__((warn_unused_result));
/* Number of entries held (for tests and SHOW output). */
size_t classify_cache_count(const struct classify_cache *c);

/* What classify_cached did since classify_cache_new. */
struct classify_cache_stats {
    uint64_t hits;    /* served from the cache: no parse */
    uint64_t misses;  /* parsed (and cached) */
    uint64_t unkeyed; /* of all calls, texts without a key: looked up by the full text */
};
void classify_cache_stats(const struct classify_cache *c, struct classify_cache_stats *out);
/* Look texts up by their key (on, the default) or only by the full text (off: what pgdual did
 * before the key; for benchmarks and tests). Switching clears the cache. */
void classify_cache_use_keys(struct classify_cache *c, bool on);
