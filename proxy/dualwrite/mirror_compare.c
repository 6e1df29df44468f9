/* proxy/dualwrite/mirror_compare.c: the comparison of a mirrored unit's two outcomes (the hash
 * itself is protocol/outcome.c) and what a difference means: a divergence logged and counted, and,
 * when the data may differ now, the secondary taken out of in_sync (proxy/dualwrite/sync_state.c).
 * A wrapped autocommit write is compared at the end of pgdual's transaction, when old's outcome is
 * known. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/replay.h"
#include "proxy/dualwrite/divergence.h"
#include "proxy/dualwrite/mirror.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

/* A replayed unit: the secondary must have completed the same steps with the same tags, then
 * failed at pgdual's statement (an earlier failure there is a real divergence). The rows of the
 * primary's failed step have no counterpart and are not compared. */
static enum outcome_diff compare_replayed(const struct unit *u)
{
    const struct outcome *p = &u->prim, *q = &u->second;
    if (!q->error) {
        return OUTCOME_DIFF_error_mismatch;
    }
    if (strcmp(q->sqlstate, REPLAY_FAIL_SQLSTATE) != 0) {
        return OUTCOME_DIFF_sqlstate_mismatch;
    }
    if (p->commands_at_error != q->commands_at_error || p->acks_at_error != q->acks_at_error ||
        p->tags_hash_at_error != q->tags_hash_at_error) {
        return OUTCOME_DIFF_tag_mismatch;
    }
    return OUTCOME_DIFF_none;
}

/* The affected-row count at the end of a command tag ("UPDATE 3", "DELETE 0", "MERGE 2"), for
 * the verbs whose rows may be missing on a secondary being seeded; -1 for any other tag. */
static long long tag_rows(const char *tag, char *verb, size_t cap)
{
    static const char *const verbs[] = {"UPDATE ", "DELETE ", "MERGE "};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        size_t n = strlen(verbs[i]);
        if (strncmp(tag, verbs[i], n) == 0 && tag[n] >= '0' && tag[n] <= '9') {
            snprintf(verb, cap, "%s", verbs[i]);
            return strtoll(tag + n, NULL, 10);
        }
    }
    return -1;
}

/* While seeding, a write new applied to fewer rows than old (UPDATE/DELETE/MERGE n on old, fewer
 * on new: the rows are not copied yet; the backfill copies them as old has them) is expected:
 * counted in seed_skipped_total instead of as a divergence. Only a one-statement outcome whose
 * both sides succeeded, with the same verb. */
static bool seed_skipped(struct session *s, const struct outcome *p, const struct outcome *q,
                         enum outcome_diff d)
{
    if (atomic_load_explicit(&s->worker->server->secondary_state, memory_order_relaxed) !=
            SYNC_seeding ||
        (d != OUTCOME_DIFF_tag_mismatch && d != OUTCOME_DIFF_result_mismatch) || p->error ||
        q->error || p->commands != 1 || q->commands != 1 ||
        ((p->unknown | q->unknown) & OUTCOME_UNKNOWN_TAGS)) {
        return false;
    }
    char vp[16], vq[16];
    long long np = tag_rows(p->last_tag, vp, sizeof(vp));
    long long nq = tag_rows(q->last_tag, vq, sizeof(vq));
    if (np < 0 || nq < 0 || strcmp(vp, vq) != 0 || nq > np || (nq == np && q->rows >= p->rows)) {
        return false;
    }
    stats_add(&s->worker->stats, STAT_seed_skipped_total, 1);
    return true;
}

/* Do u's outcomes differing as d mean the data may differ now? A write (or session change)
 * that came out differently: yes. Not so for the rows of a write flagged nondeterministic
 * (now(), random(): they differ by design and are counted as nondeterministic writes), for a unit
 * of lock-only reads (a SKIP LOCKED queue pop picking another row changes nothing), nor for the
 * rows of reads mirrored only because the lexing was unsure, unless the lexing settings make the
 * parse that calls them reads untrustworthy. */
static bool diff_changes_data(const struct unit *u, enum outcome_diff d)
{
    bool lock_reads_only = u->writes > 0 && u->lock_reads == u->writes;
    bool reads_only =
        u->writes > 0 && u->lock_reads + u->unsure_reads == u->writes && !u->lex_unsafe;
    bool rows_only = d == OUTCOME_DIFF_result_mismatch;
    return u->mirrored && !lock_reads_only && !(rows_only && (u->nondeterministic || reads_only));
}

/* The secondary finished the wrapped unit: keep what its comparison needs until the wrap's end
 * (mirror_wrap_ended) says whether old committed it. */
static void stash_wrapped(struct mirror *m, const struct unit *u, enum outcome_diff d)
{
    m->wrap_sec_known = true;
    m->wrap_diff = d;
    m->wrap_prim = u->prim;
    m->wrap_second = u->second;
    m->wrap_prim_us = u->prim_us;
    m->wrap_sec_us = u->sec_us;
    m->wrap_changes_data = diff_changes_data(u, d);
}

void mirror_compare_unit(struct session *s, struct unit *u)
{
    if (u->sec != UNIT_SEC_DONE || !u->prim_done) {
        return;
    }
    if (u->wrapped) {
        stash_wrapped(&s->mirror, u,
                      u->outcome_partial || u->replayed ? OUTCOME_DIFF_none
                                                        : outcome_compare(&u->prim, &u->second));
        return;
    }
    enum outcome_diff d;
    if (u->outcome_partial) {
        /* The primary's outcome lacks the steps before the unit turned mirrored: only a failure
         * of the secondary alone can be told. */
        d = !u->prim.error && u->second.error ? OUTCOME_DIFF_error_mismatch : OUTCOME_DIFF_none;
    } else {
        d = u->replayed ? compare_replayed(u) : outcome_compare(&u->prim, &u->second);
    }
    divergence_note_partial(s, &u->prim, &u->second);
    if (d == OUTCOME_DIFF_none || seed_skipped(s, &u->prim, &u->second, d)) {
        return;
    }
    if (d == OUTCOME_DIFF_sqlstate_mismatch && u->copy_fail_forced) {
        /* The primary failed the COPY; new ended at pgdual's CopyFail instead of failing where
         * old did: both rolled it back (not a divergence of its outcome), but new ran rows old
         * did not, and their column defaults may have drawn sequence values old never drew. */
        stats_add(&s->worker->stats, STAT_nondeterministic_writes_total, 1);
        divergence_report_nondeterministic(
            s, u, "a COPY old failed ran on new until pgdual ended it: its defaults may have drawn",
            NULL);
        char why[160];
        snprintf(why, sizeof(why),
                 "a COPY old failed (%s) ran on new until pgdual ended it (%s): column defaults "
                 "may have drawn other sequence values",
                 u->prim.sqlstate, u->second.sqlstate);
        server_secondary_diverged(s->worker->server, why);
        return;
    }
    stats_add(&s->worker->stats, STAT_divergences_total, 1);
    stats_divergence(&s->worker->stats, d);
    divergence_report(s, u, d);
    /* Persisted before the reply is released. */
    if (diff_changes_data(u, d)) {
        char why[96];
        snprintf(why, sizeof(why), "a mirrored write came out differently on the secondary (%s)",
                 outcome_diff_name(d));
        server_secondary_diverged(s->worker->server, why);
    }
}

void mirror_wrap_ended(struct session *s, bool commit_failed)
{
    struct mirror *m = &s->mirror;
    bool known = m->wrap_sec_known;
    m->wrap_sec_known = false;
    enum outcome_diff d = m->wrap_diff;
    if (commit_failed) {
        /* Old rolled the write back: a divergence only if new kept it. */
        d = known && !m->wrap_second.error ? OUTCOME_DIFF_error_mismatch : OUTCOME_DIFF_none;
    }
    if (!known || d == OUTCOME_DIFF_none) {
        return; /* equal, or new never finished it (a lost secondary is lagging already) */
    }
    if (!commit_failed && seed_skipped(s, &m->wrap_prim, &m->wrap_second, d)) {
        return;
    }
    stats_add(&s->worker->stats, STAT_divergences_total, 1);
    stats_divergence(&s->worker->stats, d);
    struct divergence_event e = {.kind = outcome_diff_name(d),
                                 .fingerprint = m->wrap_fingerprint,
                                 .sql = m->wrap_sql,
                                 .prim = &m->wrap_prim,
                                 .second = &m->wrap_second,
                                 .prim_us = m->wrap_prim_us,
                                 .sec_us = m->wrap_sec_us};
    divergence_record(s, &e);
    if (commit_failed) {
        SLOG_INFO(s, "the primary refused to COMMIT a write the secondary applied");
    }
    /* Old failing to commit what new applied always changes data; otherwise as compare_unit. */
    if (commit_failed || m->wrap_changes_data) {
        char why[96];
        snprintf(why, sizeof(why), "a wrapped write came out differently on the secondary (%s)",
                 outcome_diff_name(d));
        server_secondary_diverged(s->worker->server, why);
    }
}
