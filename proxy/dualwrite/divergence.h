/* proxy/dualwrite/divergence.h: recording divergences: a stderr line, one JSON line in the
 * divergence log (time, session, user, database, the statement's fingerprint and normalized text,
 * literals only with log_literals = on, and each side's outcome) and a count in the server's table
 * that SHOW DIVERGENCES lists. Log lines are single O_APPEND writes, so the worker threads share
 * the file without a lock; the table has its own (proxy/dualwrite/divergence_table.h). */
#pragma once
#include <stdint.h>

#include "protocol/outcome.h"

struct session;
struct unit;

/* One divergence, from whichever path compared the two sides (mirrored unit, routed read's
 * shadow, pgdual's own wrap). Everything is borrowed for the call. */
struct divergence_event {
    const char *kind;     /* "error_mismatch", "result_mismatch", ... (outcome_diff_name) */
    uint64_t fingerprint; /* libpg_query fingerprint of the statement (0 = unknown) */
    const char *sql;      /* raw statement text, or NULL; normalized before it is stored
                             or logged unless log_literals = on */
    const struct outcome *prim, *second; /* each side's outcome, or NULL when not known */
    uint64_t prim_us, sec_us;            /* each side's latency */
};

/* Log one divergence: stderr line, JSON line in the divergence log, and the server's table
 * that SHOW DIVERGENCES lists. Does not touch the stats counters (callers count). */
void divergence_record(struct session *s, const struct divergence_event *e);
/* divergence_record for a mirrored unit whose two outcomes differ as d. */
void divergence_report(struct session *s, const struct unit *u, enum outcome_diff d);
/* A mirrored write that made up values (now(), random(), ids ...) pgdual could not pin for the
 * secondary, with why and its table (NULL: not known): stderr, the divergence log and the
 * divergence table (kind nondeterministic_write). Callers count. */
void divergence_report_nondeterministic(struct session *s, const struct unit *u, const char *why,
                                        const char *table);
/* After outcome_compare(a, b): if it had to leave a part out (a reply message too long to read
 * whole, see OUTCOME_UNKNOWN_*), count it in compares_partial_total and say so on stderr. */
void divergence_note_partial(struct session *s, const struct outcome *a, const struct outcome *b);
