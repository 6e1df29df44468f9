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
