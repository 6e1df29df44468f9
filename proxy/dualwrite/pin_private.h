/* proxy/dualwrite/pin_private.h: what pin_lookup.c, pin_frontend.c and pin_reply.c share (not for
 * use outside the pin_* files). */
#pragma once
#include <stdbool.h>

#include "protocol/pin.h"
#include "proxy/dualwrite/pin_session.h"

struct session;

/* Statements are analyzed (and tables looked up) while there is a secondary to mirror to and a
 * parse pgdual can trust. */
bool pin_analysis_active(const struct session *s);
/* Why values cannot be pinned now although the analysis runs (pin_writes = off, mirror_order =
 * parallel), or NULL. */
const char *pin_off_reason(const struct session *s);
/* Analysis active and nothing keeps values from being pinned. */
bool pin_active(const struct session *s);
/* What the session knows of st's target (NULL: nothing, or its lookup failed). */
const struct pin_table *pin_table_known(struct session *s, const struct pin_stmt *st);
/* The message the plan was made for is handled: answers kept for it only go. */
void pin_catalog_message_done(struct pin_catalog *c);
/* Might statement i of p find the catalog changed by the statements before it in the same text
 * (DDL, SET, code pgdual cannot see into; a CREATE TABLE it describes aside)? */
bool pin_plan_catalog_moves(const struct pin_plan *p, int i);
/* The session ran something that may change what its lookups say (set_config): keep its own. */
void pin_catalog_private(struct pin_catalog *c);

/* pin_cte_query.c: data-modifying WITH queries in a Query, for pin_frontend.c and pin_cte_exec.c.
 * What pinning a statement with data-modifying WITH queries takes (pin_decide_cte). */
struct cte_pin {
    bool rewritten;
    struct wbuf text;        /* its text for the primary */
    struct pin_tmpl tmpl;    /* the secondary's */
    struct pin_shape *outer; /* the outer statement's shape (a reference), or NULL */
    uint32_t nslots;         /* the unit's slots it takes */
};
void pin_cte_pin_free(struct cte_pin *p);
/* Statement index (with data-modifying WITH queries pgdual placed, st->outer) of a Query: each
 * WITH query pinned apart (pin_cte.c), the outer statement as any statement. 1: rewritten (*cp);
 * 2: nothing made up (known); -1: cannot be pinned (noted); 0: not for this path (decide()). */
int pin_decide_cte(struct session *s, struct unit *u, const char *sql, uint32_t index,
                   struct cte_pin *cp);
/* pin_frontend.c's helpers, for pin_cte_exec.c. */
struct unit_pin *pin_unit_pin_of(struct unit *u);
void pin_note_unpinned(struct unit *u, const char *why, const char *table, uint32_t index);
struct pin_step *pin_add_step(struct unit *u, struct pin_shape *sh);
void pin_set_known(struct unit_pin *p, uint32_t index);
void pin_table_name(char *dst, size_t cap, const char *schema, const char *rel);
/* pin_cte_query.c, for pin_cte_exec.c: the unit's slots grow by one per shape (and one for a mark
 * alone); *rec is the number pgdual's table records the first under. */
bool pin_add_slots(struct session *s, struct unit *u, struct pin_shape *const *shapes, int nshapes,
                   bool mark_only, uint32_t *rec);
/* Is a ROLLBACK, ROLLBACK TO or COMMIT sent through the extended protocol still unanswered by the
 * primary while pgdual's table for WITH rows may have been made in its block (it may drop it)? */
bool pin_undo_in_flight(const struct session *s);
/* May a ROLLBACK, ROLLBACK TO or COMMIT drop pgdual's table for WITH rows (not made yet, or made
 * inside the block)? */
bool pin_table_may_go(const struct session *s);

/* pin_cte_exec.c, for pin_frontend.c. */
struct stmt_class;
#define PIN_NAMES_CLASH "the client names statements or portals \"pgdual.\" as pgdual does"
/* Does a client's statement or portal name begin as pgdual's own names do ("pgdual.")? */
bool pin_name_clashes(const char *name);
/* A Parse of a statement with data-modifying WITH queries (plan statement 0 has outer and ctes):
 * decide now which of them are pinned at its Binds (c->msg_*; the plan moves into c->msg_cte).
 * false: not for this path (pin_decide decides as for any statement). */
bool pin_cte_parse(struct session *s, const uint8_t *msg, size_t len);
/* A Bind: one of a statement with pinned WITH queries is noted for its Execute. */
void pin_cte_bind(struct session *s, struct unit *u, const uint8_t *msg, size_t len);
/* A Close of a portal. */
void pin_cte_close(struct session *s, struct unit *u, const uint8_t *msg, size_t len);
/* An Execute of portal (class cls, NULL when unknown): true when it concerns a statement with
 * pinned WITH queries (handled: pinned, or noted as not). */
bool pin_cte_execute(struct session *s, struct unit *u, const struct stmt_class *cls,
                     const char *portal, uint32_t max_rows, bool active);
/* A Describe of portal: its columns lose pgdual's when the primary holds it as pgdual's. */
void pin_cte_describe(struct session *s, struct unit *u, const char *portal);
void pin_cte_binds_free(struct unit_pin *p);
void pin_cte_live_free(struct pin_catalog *c);
/* A Parse of the statement name: cte, one with pinned WITH queries (pgdual remembers the name
 * even when it later forgets the statement, to count its Executes); else the name is another's. */
void pin_cte_parsed(struct session *s, const char *name, bool cte);
void pin_cte_names_free(struct pin_catalog *c);
/* pin_cte_own.c, for pin_cte_exec.c. */
struct pin_cte_stmt;
/* The index of name among the client's WITH statement names, -1. */
int pin_cte_name_at(const struct pin_catalog *c, const char *name);
/* Why the primary cannot run pgdual's own statement of cs for u's Bind, or NULL. */
const char *pin_cte_own_why(struct session *s, const struct unit *u, const struct pin_cte_stmt *cs);
/* The answer (type) to a message of pgdual's the primary gets in front of the client's message
 * at step (a Bind's check), in reply order among the others. */
bool pin_cte_own_add_before(struct unit *u, uint8_t type, uint32_t step);
