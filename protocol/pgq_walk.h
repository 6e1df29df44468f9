/* protocol/pgq_walk.h: a generic walk over libpg_query's protobuf parse tree (internal to
 * protocol/). Every message-typed field is descended through its descriptor, so a node is found
 * wherever the grammar allows it. Pure. */
#pragma once
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* Trees deeper than this are not walked: pgq_walk then returns false (callers treat the
 * statement as unknown: when in doubt, mirror). */
#define PGQ_WALK_MAX_DEPTH 2000

/* visit(ctx, m) is called on m and every message below it, parents first. Returns false when
 * the tree was deeper than PGQ_WALK_MAX_DEPTH (the deeper parts were not visited). */
bool pgq_walk(const ProtobufCMessage *m, void (*visit)(void *ctx, const ProtobufCMessage *m),
              void *ctx);
