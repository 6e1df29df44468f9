/* proxy/session/stmt_map.h: a bounded hash map from a prepared statement's or portal's name to what
 * pgdual knows of it (struct stmt_entry). O(1) find, insert and remove; clear walks the table.
 * Names are cut to STMT_NAME_MAX bytes, as the server's own tables (keyed by NAMEDATALEN)
 * compare them. The meaning of the entries is proxy/session/stmt_track.c's business. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STMT_NAME_MAX 63     /* NAMEDATALEN - 1 */
#define STMT_MAP_MAX  100000 /* entries per map at most, whatever max says */

/* What the extended protocol needs to know about a statement (or the statement of a portal). */
struct stmt_class {
    bool mirrored;
    bool nondeterministic;
    bool dml_only;       /* may run inside pgdual's BEGIN/COMMIT (see struct mirror) */
    bool commits;        /* COMMIT/END/PREPARE TRANSACTION: waits for the secondary in lockstep */
    bool txn_end;        /* COMMIT, ROLLBACK [TO SAVEPOINT], PREPARE TRANSACTION ...: its Execute
                            ends or undoes (part of) a transaction (struct unit's txn_end); not
                            BEGIN, SAVEPOINT, RELEASE */
    bool txn_keeps;      /* BEGIN, START TRANSACTION, SAVEPOINT or RELEASE alone: changes no
                            table, setting or lexing (pgdual's table for WITH rows survives it) */
    bool inserts;        /* INSERT/MERGE/COPY FROM: may draw sequence values (classify.h) */
    bool lock_only_read; /* SELECT ... FOR UPDATE and the like: changes no data (classify.h) */
    bool user_code;      /* DO, CALL, unknown functions: may do anything (classify.h) */
    bool plain_select;   /* SQL PREPARE of a plain SELECT: its EXECUTE stores nothing */
    bool copy_from;      /* COPY ... FROM STDIN: its Execute starts a copy-in */
    bool effects;        /* running it creates or drops named statements or portals (PREPARE...) */
    bool catalog;        /* running it may change what the catalog says (pin_session.h) */
    bool settings_only;  /* ...by SET / RESET alone */
    bool lex_unsure;  /* parsed while pgdual could not trust its parse (see session_classify.c) */
    uint8_t on;       /* backends holding it (bit per enum dial_backend); see unit_uses */
    uint32_t made_in; /* serial of the unit that defined it */
    uint64_t fingerprint;
    /* Deterministic writes: the statement runs on the primary with pgdual's RETURNING list
     * (pin: its shape, a reference owned like sql), and the portal's Executes are pinned unless
     * pin_off (Bind formats or a row limit pgdual cannot serve: stripped only). pin_known: its
     * values are known to the secondary (pinned, or nothing made up): a failed Execute of it drew
     * nothing that matters. unpinned: why it makes up values and goes verbatim (static), or NULL.
     */
    struct pin_shape *pin;
    /* A statement with data-modifying WITH queries pgdual may pin at its Binds (its Parse went
     * verbatim: proxy/dualwrite/pin_cte_exec.c), a reference owned like sql; a portal shares its
     * statement's. */
    struct pin_cte_stmt *pin_cte;
    bool pin_off;
    bool pin_known;
    const char *unpinned;
    char unpinned_table[2 * 63 + 2]; /* the table it writes, for the reconciliation */
    char *sql; /* the statement text (at most 4096 bytes), for the divergence log; may be NULL */
    /* A statement: the exact Parse message (type byte and length included) both sides were sent,
     * owned like sql; NULL when not known (SQL PREPARE, ...). A new secondary connection gets it
     * again (proxy/session/session_reconnect.c). */
    uint8_t *parse_msg;
    uint32_t parse_len;
    /* Running it may change session state a new secondary connection would lack (SET, temporary
     * tables, advisory locks, ...: session_reconnect_taint). */
    bool session_state;
};

/* Free what c owns (sql, the reference on pin) and clear them. */
void stmt_class_release(struct stmt_class *c);

struct stmt_entry {
    char name[STMT_NAME_MAX + 1];
    /* Settled: the primary answered every message about this name so far, and `known` says
     * that cls is exactly what it holds under the name (its sql owned). */
    bool known;
    struct stmt_class cls;
    uint32_t pending; /* messages about this name the primary has not answered yet */
    /* The unit being received from the client touched this name last (own_epoch equals the
     * tracker's epoch): if its later messages run at all, the name holds `own` (own_defined)
     * or nothing. own.sql is borrowed from the tracker's record of that message. */
    uint32_t own_epoch;
    bool own_defined;
    struct stmt_class own;
    struct stmt_entry *chain; /* next entry in the same bucket */
};

struct stmt_map {
    struct stmt_entry **buckets; /* NULL until the first insert */
    size_t mask;                 /* buckets - 1 (a power of two) */
    size_t count;
    size_t max; /* entries allowed (0: STMT_MAP_MAX); stmt_map_get fails past it */
};

/* A zeroed struct stmt_map is an empty map. */
struct stmt_entry *stmt_map_find(const struct stmt_map *m, const char *name);
/* The entry for name, created (zeroed but for the name) if missing; NULL when the map is full
 * (stmt_map_full) or memory is short. */
struct stmt_entry *stmt_map_get(struct stmt_map *m, const char *name);
/* Unlink and free e (and its settled sql). */
void stmt_map_remove(struct stmt_map *m, struct stmt_entry *e);
/* Call fn on every entry; fn returns true to have the entry removed. */
void stmt_map_sweep(struct stmt_map *m, bool (*fn)(struct stmt_entry *e, void *arg), void *arg);
void stmt_map_free(struct stmt_map *m);
static inline bool stmt_map_full(const struct stmt_map *m)
{
    return m->count >= (m->max && m->max < STMT_MAP_MAX ? m->max : STMT_MAP_MAX);
}
