/* proxy/dualwrite/pin_reply.c: deterministic writes on the way back: the primary's reply loses
 * pgdual's columns (kept as JSON for the secondary), the secondary's copy of the unit gets the
 * deterministic statements, and what could not be pinned takes the secondary out of in_sync
 * (see pin_session.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pqproto.h"
#include "proxy/dualwrite/divergence.h"
#include "proxy/dualwrite/pin_private.h"
#include "proxy/dualwrite/sync_state.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

bool pin_reply_filters(const struct unit *u)
{
    return u->pin && (u->pin->n > 0 || u->pin->nown > 0);
}

/* The step answered by the reply message now beginning (the done-th statement or step), or NULL. */
static struct pin_step *current_step(struct unit_pin *p, uint32_t done)
{
    for (int i = 0; i < p->n; i++) {
        struct pin_step *st = &p->steps[i];
        if (p->simple ? st->index == done : st->reply_at == done) {
            return st;
        }
    }
    return NULL;
}

enum pin_action pin_reply_begin(struct session *s, struct unit *u, uint8_t type, uint32_t stmts,
                                uint32_t steps)
{
    (void)s;
    struct unit_pin *p = u->pin;
    struct pin_step *st = current_step(p, p->simple ? stmts : steps);
    p->cur = st && st->shape ? (int)(st - p->steps) : -1;
    bool rows = st && !st->describe;
    bool cols = st && st->shape; /* pgdual's columns are in its reply (not only WITH queries') */
    switch (type) {
    case PqMsg_RowDescription:
        return cols ? PIN_REWRITE : PIN_PASS;
    case PqMsg_DataRow:
        return rows && cols ? PIN_REWRITE : PIN_PASS;
    case PqMsg_CommandComplete:
    case PqMsg_EmptyQueryResponse:
    case PqMsg_PortalSuspended:
        if (rows) {
            st->complete = type == PqMsg_CommandComplete;
            st->broken = st->broken || type != PqMsg_CommandComplete;
        }
        return PIN_PASS;
    case PqMsg_ErrorResponse:
        if (rows) {
            st->broken = true;
        }
        return PIN_PASS;
    default:
        return PIN_PASS;
    }
}

/* The original message, whole: what the client gets when pgdual cannot take its columns out. */
static void put_original(struct wbuf *out, uint8_t type, const uint8_t *body, size_t len)
{
    size_t at = wbuf_begin_msg(out, type);
    wbuf_put_bytes(out, body, len);
    wbuf_end_msg(out, at);
}

void pin_reply_end(struct session *s, struct unit *u, uint8_t type, const uint8_t *body, size_t len,
                   struct wbuf *out)
{
    struct unit_pin *p = u->pin;
    struct pin_step *st = p->cur >= 0 ? &p->steps[p->cur] : NULL;
    if (!st) {
        put_original(out, type, body, len);
        return;
    }
    int rc;
    if (type == PqMsg_RowDescription) {
        /* A Describe answers NoData when the client has no column; a Query sends nothing. */
        rc = pin_strip_row_description(body, len, st->shape->m, st->describe, out);
    } else {
        if (st->pinned && !st->broken) {
            int added = st->rows.len + len > PIN_ROWS_MAX
                            ? PIN_ENOMEM
                            : pin_rows_add(&st->rows, st->shape, body, len);
            if (added < 0) {
                st->broken = true; /* the secondary gets it verbatim: pin_secondary_bytes */
                st->other_table = added == PIN_EOTHER;
                st->stale_table = added == PIN_ESTALE;
                st->bounded = added == PIN_EBOUNDS;
                wbuf_free(&st->rows);
                /* A batch's verbatim Execute returns pgdual's columns on the secondary too. */
                p->rows_unknown = p->rows_unknown || !p->simple;
            }
        }
        rc = pin_strip_data_row(body, len, st->shape->m, out);
    }
    if (rc < 0) {
        SLOG_INFO(s, "a pinned statement's reply does not have pgdual's columns (%d)", rc);
        st->broken = true;
        put_original(out, type, body, len);
    }
}

/* u made up values the secondary did not get: count it, log why, out of in_sync (the state
 * persisted before the reply that acknowledges it goes). */
static void account_unpinned(struct session *s, struct unit *u, const char *why)
{
    const char *table = u->pin && u->pin->unpinned_table[0] ? u->pin->unpinned_table : NULL;
    /* A name written without its schema is found through the session's search_path, which the
     * reconciliation does not share: it would compare public's table of that name. Every table
     * ("*") is owed then. */
    const char *owed = table && strchr(table, '.') && !u->pin->owe_all ? table : NULL;
    stats_add(&s->worker->stats, STAT_nondeterministic_writes_total, 1);
    divergence_report_nondeterministic(s, u, why, table);
    char entry[sizeof(s->database) + 2 * PIN_NAME_MAX + 3];
    snprintf(entry, sizeof(entry), "%s:%s", s->database, owed ? owed : "");
    server_secondary_miss_table(s->worker->server, SYNC_diverged,
                                "a write made up values that could not be pinned for the secondary",
                                owed ? entry : NULL);
}

/* ---- the secondary ------------------------------------------------------------------------------
 */

static void unpinned(struct unit *u, const char *why)
{
    if (!u->pin->unpinned) {
        u->pin->unpinned = why;
    }
}

int pin_secondary_bytes(struct session *s, struct unit *u)
{
    struct unit_pin *p = u->pin;
    if (!p || p->n == 0 || u->copy_in) {
        return 0;
    }
    struct pin_subst *subst = calloc((size_t)p->n, sizeof(*subst));
    if (!subst) {
        unpinned(u, "out of memory pinning it");
        return -1;
    }
    size_t n = 0;
    for (int i = 0; i < p->n; i++) {
        struct pin_step *st = &p->steps[i];
        if (!st->pinned || st->describe) {
            continue;
        }
        if (!st->complete || st->broken) {
            continue; /* not run on the primary, or verbatim (pin_account counted it) */
        }
        pin_rows_close(&st->rows);
        if (st->has_tmpl) {
            if (p->readback_failed || p->readback_pending) {
                continue; /* verbatim: pin_readback_done counted it */
            }
            subst[n++] = (struct pin_subst){.index = st->index,
                                            .start = st->start,
                                            .end = st->end,
                                            .shape = st->shape,
                                            .rows = &st->rows,
                                            .tmpl = &st->tmpl,
                                            .slot_rows = p->slots};
            continue;
        }
        if (st->cte_bind > 0 && st->cte_bind <= p->ncte_binds) {
            /* pgdual's statement over the rows read back, prepared again each time */
            if (p->readback_failed || p->readback_pending) {
                continue; /* verbatim: pin_readback_done counted it */
            }
            subst[n++] = (struct pin_subst){.index = st->index,
                                            .shape = st->shape,
                                            .rows = &st->rows,
                                            .tmpl = &st->tmpl,
                                            .slot_rows = p->slots,
                                            .nslot_rows = p->nslots,
                                            .cte = p->cte_binds[st->cte_bind - 1].cs};
            continue;
        }
        struct pin_shape *sh = st->shape;
        bool parse = !sh->sec_stmt_id || sh->sec_epoch != s->pin.sec_epoch;
        if (!sh->sec_stmt_id && !p->simple) {
            sh->sec_stmt_id = ++s->pin.next_sec_id;
        }
        if (!p->simple) {
            /* prepared there by this unit, or before (a Query inlines the rows instead: a shape
             * a SQL EXECUTE shares with the protocol's statement is not prepared by it) */
            sh->sec_epoch = s->pin.sec_epoch;
        }
        subst[n++] = (struct pin_subst){.index = st->index,
                                        .start = st->start,
                                        .end = st->end,
                                        .shape = sh,
                                        .rows = &st->rows,
                                        .stmt_id = sh->sec_stmt_id,
                                        .parse = parse};
    }
    int rc = 0;
    if (n > 0) {
        struct wbuf out;
        wbuf_init(&out);
        uint32_t extra = 0;
        rc = p->simple ? pin_substitute_query(u->bytes.data, u->bytes.len, subst, n, &out)
                       : pin_substitute_batch(u->bytes.data, u->bytes.len, subst, n, &out, &extra);
        if (rc == 0) {
            wbuf_free(&u->bytes);
            u->bytes = out;
            stats_add(&s->worker->stats, STAT_pinned_writes_total, (int64_t)n);
            atomic_fetch_add_explicit(&s->worker->server->pinned_gen, 1, memory_order_acq_rel);
            u->pinned_sent = true;
            rc = (int)extra;
        } else {
            wbuf_free(&out);
            SLOG_INFO(s, "cannot build the pinned statements for the secondary (%d)", rc);
            account_unpinned(s, u, "the unit could not be rebuilt with pinned values");
            rc = -1;
        }
    }
    free(subst);
    if (p->rows_unknown) {
        u->prim.unknown |= OUTCOME_UNKNOWN_ROWS; /* the secondary's statements return none */
    }
    return rc;
}

bool pin_unit_verbatim(const struct unit *u)
{
    return u->function_call || u->pin_inactive || (u->pin && u->pin->unpinned);
}

bool pin_failed_step_known(const struct unit *u, uint32_t index)
{
    return u->pin && index < 64 && ((u->pin->known >> index) & 1);
}

/* Did a statement whose WITH query rows were to be read back run on the primary (its
 * CommandComplete came, before any error of the unit)? Its writes then stand unless the client
 * rolls them back (a SAVEPOINT after it in the unit keeps them through ROLLBACK TO), and the
 * secondary gets it verbatim when the rows cannot be read back. */
static bool readback_step_ran(const struct unit_pin *p)
{
    for (int i = 0; i < p->n; i++) {
        const struct pin_step *st = &p->steps[i];
        if (!st->describe && st->complete && (st->has_tmpl || st->cte_bind > 0)) {
            return true;
        }
    }
    return false;
}

/* The read-back of u's WITH query rows failed: is that a write the secondary gets verbatim? Not
 * when none of them ran (the primary's error came first). */
static bool readback_loss(const struct unit *u)
{
    return u->pin->readback_failed && (!u->prim.error || readback_step_ran(u->pin));
}

static const char *readback_why(const struct unit *u)
{
    return u->pin->readback_moved   ? "a relation the WITH statement names finds another one "
                                      "now than when it was prepared (a table made since "
                                      "shadows it)"
           : u->pin->readback_stale ? "a WITH query's table's columns changed since pgdual read "
                                      "them (DDL of another session)"
           : u->pin->readback_json_null
               ? "a WITH query stored a JSON null in a json or jsonb column, or a json scalar "
                 "(its rows as JSON cannot carry them)"
               : "the rows of a data-modifying WITH query could not be read "
                 "back";
}

void pin_account(struct session *s, struct unit *u, bool some_ran)
{
    if (!s->mirror.secondary_up || !s->dials->d.mirror || u->sec == UNIT_SEC_SKIPPED) {
        return; /* nothing reaches the secondary: lagging or mirror = off say so already */
    }
    for (int i = 0; u->pin && !u->prim.error && i < u->pin->n; i++) {
        const struct pin_step *st = &u->pin->steps[i];
        if (st->pinned && !st->describe && (!st->complete || st->broken)) {
            unpinned(u, st->other_table ? "the primary wrote another table than its name finds now "
                                          "(a table made since shadows it)"
                        : st->stale_table ? "its table's columns changed since pgdual read them "
                                            "(added, dropped or retyped since it was prepared)"
                        : st->bounded ? "it stores an array whose lower bounds are not 1, which "
                                        "its rows as JSON cannot carry"
                        : st->broken  ? "its returned rows could not be kept"
                                      : "its rows did not come");
        }
    }
    bool lost = u->pin && !u->pin->readback_pending && readback_loss(u);
    if (lost) {
        unpinned(u, readback_why(u));
    }
    const char *why = u->pin ? u->pin->unpinned : NULL;
    if (why && u->prim.error) {
        /* Only if that statement ran: the ones before the primary's error did. */
        some_ran = u->pin->unpinned_at < u->prim.commands_at_error;
    }
    some_ran = some_ran || lost; /* a WITH write whose rows were lost ran */
    if (!why && u->pin_inactive && (u->nondeterministic || u->inserts || u->user_code)) {
        why = "pinning is off (pin_writes = off, mirror_order = parallel, or pgdual cannot trust "
              "its parse of the text)";
    }
    if (!why && u->function_call && !u->prim.error) {
        /* A function called by OID (pinning plans no statement for it): it ran again on the
         * secondary. A failed one: note_failed_draw. */
        why = pin_why_user_code;
    }
    if (!why || !some_ran || u->internal) {
        return;
    }
    account_unpinned(s, u, why);
}

void pin_unit_primary_done(struct session *s, struct unit *u, uint8_t txn_status)
{
    struct pin_catalog *c = &s->pin;
    /* The end of its transaction, or a ROLLBACK TO, may undo what it changed. */
    bool bump = u->catalog_change ||
                (c->ddl_in_txn && (txn_status == PQ_TXN_IDLE || u->txn_end || u->undoes));
    c->ddl_in_txn = (c->ddl_in_txn || u->catalog_change) && txn_status != PQ_TXN_IDLE;
    c->private_only = c->private_only || u->catalog_change; /* its search_path or role may differ */
    pin_cte_primary_done(s, u);
    if (c->cte_in_txn && (txn_status == PQ_TXN_IDLE || u->txn_end || u->undoes)) {
        c->cte_table = c->cte_in_txn = false; /* made in a block that may have rolled back */
    }
    if (bump) {
        atomic_fetch_add_explicit(&s->worker->server->catalog_gen, 1, memory_order_acq_rel);
    }
}

void pin_secondary_done(struct session *s, const struct unit *u)
{
    if (u->second.error) {
        s->pin.sec_epoch++; /* pgdual's statements there may not all have been prepared */
    }
}

void pin_unit_sealed(struct session *s, struct unit *u)
{
    if (u->catalog_change || u->session_objects) {
        s->pin.sec_epoch++; /* DISCARD ALL, DEALLOCATE ALL, a DO: they may be gone */
        if (!u->internal) {
            s->pin.cte_table = false; /* DISCARD TEMP, a DROP: made again when needed */
        }
    }
    if (!u->internal && u->pin && u->pin->readback_pending) {
        /* The rows of its WITH queries: read back right after it, before the secondary gets it. */
        struct unit *r = mirror_internal_unit(&s->mirror, NULL, PIN_CTE_READBACK, &s->to_primary);
        if (r && (r->pin = calloc(1, sizeof(*r->pin)))) {
            r->pin->readback = true;
            r->pin->owner = u->serial;
        } else {
            u->pin->readback_failed = true;
            u->pin->readback_pending = false;
        }
    }
    if (u->catalog_change && !u->internal) {
        /* Statements pipelined behind it must not trust what was looked up before it ran. */
        atomic_fetch_add_explicit(&s->worker->server->catalog_gen, 1, memory_order_acq_rel);
    }
}

/* ---- the rows of data-modifying WITH queries, read back --------------------------------------
 */

/* The unit whose rows the read-back u brings, if it is still there. */
static struct unit *readback_owner(struct session *s, const struct unit *u)
{
    for (struct unit *v = s->mirror.head; v; v = v->next) {
        if (!v->internal && v->serial == u->pin->owner && v->pin) {
            return v;
        }
    }
    return NULL;
}

bool pin_readback_pending(const struct unit *u)
{
    return u->pin && u->pin->readback_pending;
}

void pin_readback_row(struct session *s, struct unit *u, const uint8_t *body, size_t len, bool cut)
{
    struct unit *o = readback_owner(s, u);
    if (!o || o->pin->readback_failed) {
        return;
    }
    uint32_t slot;
    bool moved;
    const uint8_t *json;
    size_t jlen;
    if (cut || pin_cte_readback_row(body, len, &slot, &moved, &json, &jlen) < 0) {
        o->pin->readback_failed = true;
        return;
    }
    if (slot < o->pin->rec_base || slot - o->pin->rec_base >= o->pin->nslots) {
        /* Another unit's, already read back: its DELETE was undone by a ROLLBACK TO a savepoint
         * made after it (or the rows never came: that unit was counted then). */
        return;
    }
    if (moved) { /* the secondary would write another table: the statement goes verbatim */
        o->pin->readback_failed = o->pin->readback_moved = true;
        return;
    }
    slot -= o->pin->rec_base;
    const struct pin_shape *sh = o->pin->slot_shapes[slot];
    bool json_null = false;
    if (!sh || pin_values_readback(sh, json, jlen, &json, &jlen, &json_null) < 0) {
        o->pin->readback_failed = true;
        return;
    }
    uint64_t keys;
    if (pin_json_keys_hash(json, jlen, &keys) < 0 || keys != sh->columns_hash) {
        /* DDL of another session since the shape was made: the secondary's statement would store
         * the columns pgdual read then, and let new make up the others */
        o->pin->readback_failed = o->pin->readback_stale = true;
        return;
    }
    if (json_null) {
        /* a JSON null (the secondary would store an SQL NULL), or a json scalar (another text) */
        o->pin->readback_failed = o->pin->readback_json_null = true;
        return;
    }
    if (o->pin->slots[slot].len + jlen > PIN_ROWS_MAX) {
        o->pin->readback_failed = true;
        return;
    }
    struct wbuf *rows = &o->pin->slots[slot];
    wbuf_put_u8(rows, rows->len == 0 ? '[' : ',');
    wbuf_put_bytes(rows, json, jlen);
    o->pin->readback_failed = rows->failed;
}

void pin_readback_failed(struct session *s, struct unit *u)
{
    struct unit *o = readback_owner(s, u);
    if (o) {
        o->pin->readback_failed = true;
    }
}

void pin_readback_done(struct session *s, struct unit *u)
{
    struct unit *o = readback_owner(s, u);
    if (!o || !o->pin->readback_pending) {
        return;
    }
    o->pin->readback_pending = false;
    for (uint32_t i = 0; i < o->pin->nslots; i++) {
        pin_rows_close(&o->pin->slots[i]);
    }
    if (readback_loss(o) && s->mirror.secondary_up && s->dials->d.mirror) {
        SLOG_INFO(s, "the rows of a pinned WITH query could not be read back");
        account_unpinned(s, o, readback_why(o));
    }
    mirror_dispatch(s); /* the unit waited for them */
}
