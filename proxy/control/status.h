/* proxy/control/status.h: the SHOW STATUS key/value list (dials, secondary state, every counter),
 * the one list that both the admin console and the metrics endpoint's GET /status render. */
#pragma once
#include <stdbool.h>

struct server;

/* Called once per key, in SHOW STATUS order. key and value are borrowed for the call only;
 * numeric says value is a decimal integer (JSON renders it unquoted). */
typedef void (*status_row_fn)(void *ctx, const char *key, const char *value, bool numeric);

/* Produce every SHOW STATUS row through fn. Any thread: reads the dials under their lock and
 * the counters with relaxed loads. */
void status_visit(struct server *srv, status_row_fn fn, void *ctx);
