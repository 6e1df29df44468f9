/* proxy/control/metrics.h: the HTTP metrics endpoint on [pgdual] metrics_port. Its one job is to
 * render what the workers already count: GET /metrics (Prometheus text format 0.0.4) and GET
 * /status (JSON: the SHOW STATUS list). libmicrohttpd serves it on its own internal thread, which
 * reads the per-worker counters with relaxed loads and the dials under their lock, as the admin
 * console does; it counts nothing and never touches a loop. */
#pragma once
#include "protocol/wire.h"

struct server;
struct metrics; /* opaque: the running HTTP daemon */

/* Start the endpoint on metrics_addr:metrics_port (at most metrics_max_conn connections: one
 * more closes the longest idle; metrics_idle_timeout_ms closes an idle one). With metrics_port = 0
 * it starts nothing and sets *out = NULL. Call after the workers are running (srv->workers is read
 * from then on); on failure logs why and returns a negative code. */
int metrics_start(struct server *srv, struct metrics **out) __attribute__((warn_unused_result));
/* Stop the daemon (joins its thread) and free m. NULL does nothing. Call before the workers
 * (and their counters) are freed. */
void metrics_stop(struct metrics *m);

/* The body of GET /metrics, appended to out (out->failed on allocation failure). */
void metrics_render_prometheus(struct server *srv, struct wbuf *out);
/* The body of GET /status: one JSON object, one member per SHOW STATUS row. */
void metrics_render_status(struct server *srv, struct wbuf *out);
