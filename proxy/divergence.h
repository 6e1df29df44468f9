/* proxy/divergence.h: the divergence log: one JSON line per divergence or nondeterministic
 * write, with the statement's fingerprint and normalized text (literals only with
 * log_literals = on), and each side's outcome. Lines are single O_APPEND writes, so the worker
 * threads can share the file without a lock. */
#pragma once
#include "protocol/outcome.h"

struct session;
struct unit;

void divergence_report(struct session *s, const struct unit *u, enum outcome_diff d);
void divergence_report_nondeterministic(struct session *s, const struct unit *u);
