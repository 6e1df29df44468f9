/* protocol/replay.c: the secondary's version of a unit the primary stopped with an error (see
 * replay.h for the rules). */
#include "protocol/replay.h"

#include <string.h>

#include <pg_query.h>

#include "protocol/pqproto.h"

static bool is_step(uint8_t type)
{
    return type == PqMsg_Parse || type == PqMsg_Bind || type == PqMsg_Describe ||
           type == PqMsg_Execute || type == PqMsg_Close;
}

/* Execute of a portal that cannot exist, then Sync: fails like the primary's step did. */
static void put_failing_execute(struct wbuf *out)
{
    size_t at = wbuf_begin_msg(out, PqMsg_Execute);
    wbuf_put_cstr(out, REPLAY_FAIL_NAME);
    wbuf_put_u32(out, 0);
    wbuf_end_msg(out, at);
    at = wbuf_begin_msg(out, PqMsg_Sync);
    wbuf_end_msg(out, at);
}

/* End offset (exclusive) of split statement i in a text of text_len bytes. */
static size_t stmt_end(const PgQuerySplitStmt *st, size_t text_len)
{
    size_t end = st->stmt_len > 0 ? (size_t)st->stmt_location + (size_t)st->stmt_len : text_len;
    return end <= text_len ? end : text_len;
}

/* A simple Query: the statements the primary completed, then the failing one of ours, in the
 * same Query message, so an implicit transaction spans them as it did on the primary. */
static int replay_query(const struct wire_msg *q, uint32_t done, bool syntax_error,
                        struct wbuf *out, struct replay_failure *fail)
{
    if (q->body_len == 0 || q->body[q->body_len - 1] != '\0') {
        return REPLAY_EUNSUPPORTED;
    }
    const char *sql = (const char *)q->body;
    size_t text_len = q->body_len - 1;
    if (strlen(sql) != text_len) {
        return REPLAY_EUNSUPPORTED;
    }
    PgQuerySplitResult split = pg_query_split_with_parser(sql);
    int rc = 0;
    if (split.error && done == 0 && syntax_error) {
        /* The server parses the whole text before it runs any of it, and rejected it (a typo):
         * nothing ran. The failed statement is the text as a whole. (A text only libpg_query
         * rejects — a lexing setting it does not follow, newer syntax — may have run: a CALL
         * that committed before it failed. Not trusted.) */
        fail->type = PqMsg_Query;
        fail->stmt_offset = 0;
        fail->stmt_len = text_len;
        wire_put_query(out, REPLAY_FAIL_SQL);
    } else if (split.error || split.n_stmts < 0 || (uint32_t)split.n_stmts < done) {
        rc = REPLAY_ESPLIT;
    } else {
        size_t prefix = done > 0 ? stmt_end(split.stmts[done - 1], text_len) : 0;
        fail->type = 0;
        fail->stmt_offset = fail->stmt_len = 0;
        if ((uint32_t)split.n_stmts > done) {
            const PgQuerySplitStmt *f = split.stmts[done];
            fail->type = PqMsg_Query;
            size_t at = (size_t)f->stmt_location, end = stmt_end(f, text_len);
            while (at < end &&
                   (sql[at] == ' ' || sql[at] == '\t' || sql[at] == '\n' || sql[at] == '\r')) {
                at++; /* a split statement starts right after the previous ';' */
            }
            fail->stmt_offset = at;
            fail->stmt_len = end - at;
        }
        size_t at = wbuf_begin_msg(out, PqMsg_Query);
        wbuf_put_bytes(out, sql, prefix);
        /* A newline first: the prefix may end inside a line comment. */
        wbuf_put_cstr(out, prefix > 0 ? "\n;" REPLAY_FAIL_SQL : REPLAY_FAIL_SQL);
        wbuf_end_msg(out, at);
    }
    pg_query_free_split_result(split);
    return rc;
}

/* Only steps and Flush, ending with its one Sync. */
static bool batch_shape_ok(const uint8_t *msgs, size_t len)
{
    size_t off = 0;
    struct wire_msg m;
    while (wire_next_msg(msgs, len, &off, &m) == 0) {
        if (m.type == PqMsg_Sync) {
            return off == len;
        }
        if (m.type != PqMsg_Flush && !is_step(m.type)) {
            return false;
        }
    }
    return false; /* no Sync, or torn bytes */
}

/* An extended batch: its messages up to the failed step, then a failing Execute and Sync. */
static int replay_batch(const uint8_t *msgs, size_t len, uint32_t done, struct wbuf *out,
                        struct replay_failure *fail)
{
    if (!batch_shape_ok(msgs, len)) {
        return REPLAY_EUNSUPPORTED;
    }
    size_t off = 0;
    struct wire_msg m;
    memset(fail, 0, sizeof(*fail));
    while (wire_next_msg(msgs, len, &off, &m) == 0) {
        if (m.type == PqMsg_Sync) {
            put_failing_execute(out); /* every step completed: the error came at Sync */
            return 0;
        }
        if (m.type == PqMsg_Flush) {
            wbuf_put_bytes(out, m.whole, m.whole_len);
            continue;
        }
        if (done == 0) {
            fail->type = m.type;
            put_failing_execute(out);
            return 0;
        }
        done--;
        fail->execute_index += m.type == PqMsg_Execute;
        wbuf_put_bytes(out, m.whole, m.whole_len);
    }
    return REPLAY_EUNSUPPORTED; /* no Sync, or torn bytes */
}

int replay_build(const uint8_t *msgs, size_t len, uint32_t steps_done, bool syntax_error,
                 struct wbuf *out, struct replay_failure *fail)
{
    size_t off = 0;
    struct wire_msg first;
    memset(fail, 0, sizeof(*fail));
    if (wire_next_msg(msgs, len, &off, &first) < 0) {
        return REPLAY_EUNSUPPORTED;
    }
    int rc;
    if (first.type == PqMsg_Query || first.type == PqMsg_FunctionCall) {
        if (off != len) {
            return REPLAY_EUNSUPPORTED; /* COPY data after it, or a second message */
        }
        if (first.type == PqMsg_FunctionCall) {
            if (steps_done != 0) {
                return REPLAY_EUNSUPPORTED;
            }
            fail->type = PqMsg_FunctionCall;
            wire_put_query(out, REPLAY_FAIL_SQL);
            rc = 0;
        } else {
            rc = replay_query(&first, steps_done, syntax_error, out, fail);
        }
    } else {
        rc = replay_batch(msgs, len, steps_done, out, fail);
    }
    if (rc == 0 && out->failed) {
        rc = REPLAY_ENOMEM;
    }
    return rc;
}
