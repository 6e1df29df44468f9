/* proxy/session/stmt_track.c: recorded messages (a FIFO of struct stmt_op), their confirmation from
 * the primary's replies, and the lookups (see stmt_track.h for the rules). */
#include "proxy/session/stmt_track.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/pin.h"
#include "protocol/pqproto.h"

/* Recorded messages not yet answered, at most (past this the session knows nothing more). */
#define STMT_OPS_MAX 100000

enum stmt_what { OP_DEFINE, OP_REMOVE, OP_CLEAR };

struct stmt_op {
    uint32_t unit;
    uint32_t index; /* the unit's index-th message confirmed by `reply` */
    uint8_t reply;  /* enum stmt_reply */
    uint8_t what;   /* enum stmt_what */
    uint8_t space;  /* enum stmt_space; for OP_CLEAR a mask */
    bool confirmed; /* the primary's completion for it arrived */
    char name[STMT_NAME_MAX + 1];
    struct stmt_class cls; /* OP_DEFINE: sql owned until settled */
};

static void forget_all(struct stmt_track *t);

void stmt_track_free(struct stmt_track *t)
{
    for (size_t i = t->head; i < t->n; i++) {
        stmt_class_release(&t->ops[i].cls);
    }
    free(t->ops);
    stmt_map_free(&t->maps[0]);
    stmt_map_free(&t->maps[1]);
    memset(t, 0, sizeof(*t));
}

void stmt_track_set_limit(struct stmt_track *t, size_t max)
{
    t->maps[0].max = t->maps[1].max = max;
}

/* A new unit is being received: the previous one's own layer ends. */
static void enter_unit(struct stmt_track *t, uint32_t unit)
{
    if (t->unit == unit) {
        return;
    }
    t->unit = unit;
    t->epoch++;
    t->unit_cleared[0] = t->unit_cleared[1] = false;
    memset(t->sent, 0, sizeof(t->sent));
}

uint32_t stmt_track_count(struct stmt_track *t, uint32_t unit, enum stmt_reply reply,
                          uint32_t count)
{
    enter_unit(t, unit);
    if (reply == STMT_REPLY_NONE) {
        return 0;
    }
    uint32_t before = t->sent[reply];
    t->sent[reply] += count;
    return before;
}

const struct stmt_class *stmt_track_find(struct stmt_track *t, uint32_t unit, enum stmt_space sp,
                                         const char *name)
{
    enter_unit(t, unit);
    if (t->lost) {
        return NULL;
    }
    struct stmt_entry *e = stmt_map_find(&t->maps[sp], name);
    if (e && e->own_epoch == t->epoch) {
        return e->own_defined ? &e->own : NULL;
    }
    if (!e || t->unit_cleared[sp] || e->pending > 0 || !e->known) {
        return NULL;
    }
    return &e->cls;
}

/* Append an op for the unit being received; NULL (and nothing known any more) on failure. */
static struct stmt_op *push_op(struct stmt_track *t, uint32_t unit, enum stmt_what what,
                               enum stmt_reply reply, uint32_t index)
{
    enter_unit(t, unit);
    if (t->lost) {
        return NULL;
    }
    if (t->n == t->cap && t->head > 0) { /* the answered ones make room */
        memmove(t->ops, t->ops + t->head, (t->n - t->head) * sizeof(*t->ops));
        t->n -= t->head;
        t->head = 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct stmt_op *v =
            t->n - t->head < STMT_OPS_MAX ? realloc(t->ops, cap * sizeof(*v)) : NULL;
        if (!v) {
            forget_all(t);
            return NULL;
        }
        t->ops = v;
        t->cap = cap;
    }
    struct stmt_op *op = &t->ops[t->n++];
    memset(op, 0, sizeof(*op));
    op->unit = unit;
    op->what = (uint8_t)what;
    op->reply = (uint8_t)reply;
    op->index = index;
    return op;
}

/* The entry an op on name is about, counted as pending; NULL (nothing known) on failure. */
static struct stmt_entry *touch(struct stmt_track *t, struct stmt_op *op, enum stmt_space sp,
                                const char *name)
{
    struct stmt_entry *e = stmt_map_get(&t->maps[sp], name);
    if (!e) {
        t->over_limit = op->what == OP_DEFINE && stmt_map_full(&t->maps[sp]);
        t->n--; /* the op just pushed */
        forget_all(t);
        return NULL;
    }
    op->space = (uint8_t)sp;
    memcpy(op->name, e->name, sizeof(op->name));
    e->pending++;
    e->own_epoch = t->epoch;
    return e;
}

void stmt_track_define(struct stmt_track *t, uint32_t unit, enum stmt_space sp, const char *name,
                       const struct stmt_class *c, const char *sql, enum stmt_reply reply,
                       uint32_t index)
{
    struct stmt_op *op = push_op(t, unit, OP_DEFINE, reply, index);
    if (!op) {
        return;
    }
    op->cls = *c;
    op->cls.on = 0; /* set once the unit has been placed (stmt_track_place) */
    op->cls.made_in = unit;
    op->cls.sql = sql ? strndup(sql, 4096) : NULL;
    op->cls.parse_msg = NULL; /* stmt_track_note_parse gives it its own */
    op->cls.parse_len = 0;
    op->cls.pin = pin_shape_ref(c->pin);
    op->cls.pin_cte = pin_cte_stmt_ref(c->pin_cte);
    struct stmt_entry *e = touch(t, op, sp, name);
    if (!e) {
        stmt_class_release(&op->cls);
        return;
    }
    e->own_defined = true;
    e->own = op->cls;
}

void stmt_track_remove(struct stmt_track *t, uint32_t unit, enum stmt_space sp, const char *name,
                       enum stmt_reply reply, uint32_t index)
{
    struct stmt_op *op = push_op(t, unit, OP_REMOVE, reply, index);
    struct stmt_entry *e = op ? touch(t, op, sp, name) : NULL;
    if (e) {
        e->own_defined = false;
    }
}

void stmt_track_clear(struct stmt_track *t, uint32_t unit, unsigned mask, enum stmt_reply reply,
                      uint32_t index)
{
    struct stmt_op *op = push_op(t, unit, OP_CLEAR, reply, index);
    if (!op) {
        return;
    }
    op->space = (uint8_t)mask;
    t->epoch++; /* what the unit defined before is gone too */
    for (int sp = 0; sp < 2; sp++) {
        t->unit_cleared[sp] = t->unit_cleared[sp] || (mask & (1u << sp));
    }
}

void stmt_track_place(struct stmt_track *t, uint32_t serial, uint8_t on)
{
    /* The unit placed is the newest or close to it: walk back from the end. */
    for (size_t i = t->n; i > t->head && t->ops[i - 1].unit >= serial; i--) {
        if (t->ops[i - 1].unit == serial) {
            t->ops[i - 1].cls.on = on;
        }
    }
}

/* ---- answers ---------------------------------------------------------------------------- */

static int reply_kind(uint8_t type)
{
    switch (type) {
    case PqMsg_ParseComplete:
        return STMT_REPLY_PARSE;
    case PqMsg_BindComplete:
        return STMT_REPLY_BIND;
    case PqMsg_CloseComplete:
        return STMT_REPLY_CLOSE;
    case PqMsg_CommandComplete:
    case PqMsg_PortalSuspended:
    case PqMsg_EmptyQueryResponse:
        return STMT_REPLY_EXEC;
    default:
        return -1;
    }
}

void stmt_track_reply(struct stmt_track *t, uint32_t unit, uint8_t type)
{
    int k = reply_kind(type);
    if (unit == 0 || k < 0) {
        return;
    }
    if (t->ans_unit != unit) {
        t->ans_unit = unit;
        memset(t->got, 0, sizeof(t->got));
    }
    uint32_t nth = ++t->got[k];
    /* Replies come in message order, so the op this completion confirms (if any) is the first
     * unconfirmed one of the unit with this reply kind; ops of earlier kinds ran already. */
    for (size_t i = t->head; i < t->n; i++) {
        struct stmt_op *op = &t->ops[i];
        if (op->unit > unit) {
            break;
        }
        if (op->unit == unit && op->reply == k && op->index >= nth) {
            op->confirmed = op->index == nth;
            break;
        }
    }
}

void stmt_track_confirm_all(struct stmt_track *t, uint32_t unit)
{
    for (size_t i = t->head; i < t->n && t->ops[i].unit <= unit; i++) {
        t->ops[i].confirmed = t->ops[i].confirmed || t->ops[i].unit == unit;
    }
}

static bool unknow(struct stmt_entry *e, void *arg)
{
    (void)arg;
    e->known = false;
    stmt_class_release(&e->cls);
    return e->pending == 0;
}

/* Not known any more, but maybe still there (code pgdual cannot see may have changed it, or
 * not): a statement parsed with pinning's RETURNING list keeps its class for stmt_track_pinned,
 * since its answers must lose those columns whatever else is uncertain; one with data-modifying
 * WITH queries keeps pgdual's statement (its Bind gets it only after a check that the client's
 * statement is still there: pin_cte_exec.c). */
static bool kept_class(const struct stmt_class *c)
{
    return c->pin || c->unpinned || c->pin_cte;
}

static bool unknow_keep_pin(struct stmt_entry *e, void *arg)
{
    (void)arg;
    e->known = false;
    if (!kept_class(&e->cls)) {
        stmt_class_release(&e->cls);
    }
    return e->pending == 0 && !kept_class(&e->cls);
}

static void forget_all(struct stmt_track *t)
{
    t->lost = true;
    stmt_map_sweep(&t->maps[0], unknow_keep_pin, NULL);
    stmt_map_sweep(&t->maps[1], unknow_keep_pin, NULL);
}

const struct stmt_class *stmt_track_kept(const struct stmt_track *t, enum stmt_space sp,
                                         const char *name)
{
    for (size_t i = t->n; i-- > t->head;) { /* the newest message about it decides */
        const struct stmt_op *op = &t->ops[i];
        if (op->what == OP_CLEAR) {
            if ((op->space & (1u << sp)) && op->reply != STMT_REPLY_NONE) {
                return NULL; /* DISCARD ALL, DEALLOCATE ALL, CLOSE ALL: gone */
            }
            continue; /* an uncertain clear changes nothing pgdual knows of */
        }
        if (op->space == sp && strcmp(op->name, name) == 0) {
            return op->what == OP_DEFINE && kept_class(&op->cls) ? &op->cls : NULL;
        }
    }
    const struct stmt_entry *e = stmt_map_find(&t->maps[sp], name);
    return e && kept_class(&e->cls) ? &e->cls : NULL;
}

const struct stmt_class *stmt_track_pinned(const struct stmt_track *t, enum stmt_space sp,
                                           const char *name)
{
    const struct stmt_class *c = stmt_track_kept(t, sp, name);
    return c && c->pin ? c : NULL;
}

/* What the primary now holds after op (confirmed or not) was answered. */
static void settle(struct stmt_track *t, struct stmt_op *op)
{
    bool ran = op->confirmed || op->reply == STMT_REPLY_NONE;
    if (op->what == OP_CLEAR) {
        for (int sp = 0; ran && sp < 2; sp++) {
            if (op->space & (1u << sp)) {
                stmt_map_sweep(&t->maps[sp],
                               op->reply == STMT_REPLY_NONE ? unknow_keep_pin : unknow, NULL);
            }
        }
        return;
    }
    struct stmt_entry *e = stmt_map_find(&t->maps[op->space], op->name);
    if (!e) {
        stmt_class_release(&op->cls);
        return; /* forgotten meanwhile */
    }
    e->pending--;
    if (op->what == OP_DEFINE && ran) {
        stmt_class_release(&e->cls);
        e->cls = op->cls; /* takes the sql */
        e->known = true;
    } else {
        stmt_class_release(&op->cls);
        /* A removal that ran; or a Parse/Bind of the unnamed statement/portal that did not: the
         * server drops the old one before it can fail, so what is left is not certain. A named
         * one that failed changed nothing. */
        if ((op->what == OP_REMOVE && ran) || op->name[0] == '\0') {
            unknow(e, NULL);
        }
    }
    if (!e->known && e->pending == 0 && !kept_class(&e->cls)) {
        stmt_map_remove(&t->maps[op->space], e);
    }
}

void stmt_track_unit_done(struct stmt_track *t, uint32_t unit, uint8_t txn_status)
{
    while (t->head < t->n && t->ops[t->head].unit <= unit) {
        settle(t, &t->ops[t->head++]);
    }
    if (t->head == t->n) {
        t->head = t->n = 0;
    }
    if (txn_status == PQ_TXN_IDLE) {
        stmt_map_sweep(&t->maps[STMT_SPACE_PORTAL], unknow, NULL);
    }
}

void stmt_track_note_parse(struct stmt_track *t, uint32_t unit, const char *name,
                           const uint8_t *msg, size_t len)
{
    for (size_t i = t->n; i-- > t->head && t->ops[i].unit == unit;) {
        struct stmt_op *op = &t->ops[i];
        if (op->space == STMT_SPACE_STATEMENT && strcmp(op->name, name) == 0) {
            if (op->what == OP_DEFINE && !op->cls.parse_msg && len < UINT32_MAX) {
                op->cls.parse_msg = malloc(len);
                if (op->cls.parse_msg) {
                    memcpy(op->cls.parse_msg, msg, len);
                    op->cls.parse_len = (uint32_t)len;
                }
            }
            return;
        }
    }
}

bool stmt_track_settled(const struct stmt_track *t)
{
    return t->head == t->n;
}

struct restore_ctx {
    struct wbuf *out;
    int n;
    bool unknown;
};

static bool restore_one(struct stmt_entry *e, void *arg)
{
    struct restore_ctx *c = arg;
    if (!e->known || e->pending > 0 || !e->cls.parse_msg) {
        /* The unnamed statement is re-parsed by every client before use, as a rule; a named one
         * pgdual cannot give again exactly makes the new connection unlike the old one. */
        c->unknown = c->unknown || e->name[0] != '\0';
        return false;
    }
    wbuf_put_bytes(c->out, e->cls.parse_msg, e->cls.parse_len);
    c->n++;
    return false;
}

int stmt_track_restore(struct stmt_track *t, struct wbuf *out)
{
    if (t->lost || t->head != t->n || t->maps[STMT_SPACE_PORTAL].count > 0) {
        return -1;
    }
    struct restore_ctx c = {out, 0, false};
    stmt_map_sweep(&t->maps[STMT_SPACE_STATEMENT], restore_one, &c);
    return c.unknown ? -1 : c.n;
}
