/* proxy/divergence.h: the divergence log: one JSON line per divergence or nondeterministic
 * write, with the statement's fingerprint and normalized text (literals only with
 * log_literals = on), and each side's outcome. Lines are single O_APPEND writes, so the worker
 * threads can share the file without a lock. */
#pragma once
#include <stdint.h>

#include "protocol/outcome.h"

struct session;
struct unit;

/* One statement's outcome on both sides, as a divergence report needs it. */
struct divergence_event {
    const char *kind;     /* "error_mismatch", "result_mismatch", ... (outcome_diff_name) */
    uint64_t fingerprint; /* libpg_query fingerprint of the statement (0 = unknown) */
    const char *sql;      /* raw statement text, or NULL */
    const struct outcome *prim, *second; /* each side's outcome, or NULL when not known */
    uint64_t prim_us, sec_us;            /* each side's latency */
};
/* Log one divergence (callers count it). */
void divergence_record(struct session *s, const struct divergence_event *e);
void divergence_report(struct session *s, const struct unit *u, enum outcome_diff d);
void divergence_report_nondeterministic(struct session *s, const struct unit *u);
