/* proxy/dualwrite/route_run.h: what route.c needs from route_run.c (one routed read's run) and the
 * reverse. Private to the two files. */
#pragma once
#include "proxy/dualwrite/route.h"

struct session;

/* Start a run of the read on backend which, as seg (the serving run or the shadow). < 0: the
 * send failed; that is handled here (the backend is lost, or the session ended when it was the
 * primary), so a caller looks at the result only to stop early. */
int route_run_start(struct session *s, int which, enum route_seg seg);
/* (Re)arm the session's timer for the nearest routed-read deadline. */
void route_arm_timer(struct session *s);
/* Count one fallback to the primary, by reason. */
void route_count_fallback(struct session *s, enum route_fallback why);
/* End the routed read if both its runs are finished and the client has its answer. */
void route_maybe_finish(struct session *s);
/* Forget the finished read (buffers kept for reuse up to a bound). */
void route_reset(struct route *r);
