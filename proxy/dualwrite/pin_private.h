/* proxy/dualwrite/pin_private.h: what pin_lookup.c, pin_frontend.c and pin_reply.c share (not for
 * use outside the pin_* files). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* pgdual's table for WITH query rows may be gone: made again at the end of the queue when the
 * session holds statements prepared rewritten on this primary (1: sent, the client's next message
 * waits for the answer; 0: not needed; -1: out of memory). */
int pin_cte_table_again(struct session *s);

/* ---- shared by pin_frontend.c and pin_cte_exec.c ---- */

struct unit;
struct stmt_class;
/* u's pinning notes, made when first needed (NULL: out of memory). */
struct unit_pin *pin_unit_pin_of(struct unit *u);
void pin_table_name(char *dst, size_t cap, const char *schema, const char *rel);
/* u goes (partly) verbatim although it makes up values: pin_account counts it once the primary
 * has run it. */
void pin_note_unpinned(struct unit *u, const char *why, const char *table, uint32_t index);
/* One more step of u (a reference to sh), or NULL. */
struct pin_step *pin_add_step(struct unit *u, struct pin_shape *sh);
/* Statement or Execute index made up nothing the secondary lacks. */
void pin_set_known(struct unit_pin *p, uint32_t index);
bool pin_add_slots(struct unit *u, uint32_t n, uint32_t first, uint32_t *at);

/* What pinning a statement with data-modifying WITH queries takes (decide_cte). */
struct cte_pin {
    bool rewritten;
    struct wbuf text;        /* its text for the primary */
    struct pin_tmpl tmpl;    /* the secondary's */
    struct pin_shape *outer; /* the outer statement's shape (a reference), or NULL */
    uint32_t nslots;         /* the unit's slots it takes */
};
void pin_cte_pin_free(struct cte_pin *p);
/* Statement index (with data-modifying WITH queries pgdual placed, st->outer) of the plan: each
 * WITH query pinned apart (pin_cte.c, slots from base on), the outer statement as any statement.
 * 1: rewritten (*cp); 2: nothing made up (known); -1: cannot be pinned (*why, table); 0: not for
 * this path (decide()). */
int pin_decide_cte(struct session *s, const char *sql, uint32_t index, uint32_t base,
                   struct cte_pin *cp, const char **why_out, char *table);
/* A Parse of a statement with data-modifying WITH queries (pin_cte_exec.c). 1: rewritten
 * (s->pin.out for the primary alone, s->pin.msg_shape); 0: nothing to pin, or counted
 * (s->pin.msg_*); -1: not for this path. */
int pin_rewrite_parse_cte(struct session *s, const uint8_t *msg, size_t len);
/* An Execute of portal (bound to cls, whose shape has cte) joins u. */
void pin_execute_cte(struct session *s, struct unit *u, const struct stmt_class *cls,
                     const char *portal, uint32_t max_rows, bool active);
