/* protocol/outcome.c: streaming reply summaries and their comparison (xxHash3). */
#include "protocol/outcome.h"

#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "protocol/pqproto.h"

static const char *const diff_names[] = {
#define X(n) #n,
    OUTCOME_DIFFS(X)
#undef X
};

const char *outcome_diff_name(enum outcome_diff d)
{
    return diff_names[d];
}

void outcome_init(struct outcome *o)
{
    memset(o, 0, sizeof(*o));
}

int outcome_reader_init(struct outcome_reader *r)
{
    memset(r, 0, sizeof(*r));
    r->row_state = XXH3_createState();
    wbuf_init(&r->small);
    return r->row_state ? 0 : -1;
}

void outcome_reader_free(struct outcome_reader *r)
{
    if (r->row_state) {
        XXH3_freeState(r->row_state);
        r->row_state = NULL;
    }
    wbuf_free(&r->small);
}

void outcome_begin(struct outcome_reader *r, uint8_t type)
{
    r->type = type;
    r->cut = false;
    if (type == PqMsg_DataRow) {
        XXH3_64bits_reset(r->row_state);
    } else {
        wbuf_reset(&r->small);
    }
}

void outcome_body(struct outcome_reader *r, const uint8_t *p, size_t n)
{
    if (r->type == PqMsg_DataRow) {
        XXH3_64bits_update(r->row_state, p, n);
        return;
    }
    /* Keep an exact prefix: once a chunk does not fit, nothing later is appended (a later chunk
     * after a dropped one would splice a message that was never sent). */
    size_t room = OUTCOME_CAPTURE_MAX - r->small.len;
    if (r->cut || n > room) {
        wbuf_put_bytes(&r->small, p, r->cut ? 0 : room);
        r->cut = true;
        return;
    }
    wbuf_put_bytes(&r->small, p, n);
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    return XXH3_64bits_withSeed(p, n, h);
}

/* Column names and type OIDs only: table OIDs and attribute numbers differ between databases. */
static uint64_t row_description_hash(const uint8_t *body, size_t len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    uint16_t n = wire_u16(&rd);
    uint64_t h = n;
    for (uint16_t i = 0; i < n && !rd.failed; i++) {
        const char *name = wire_cstr(&rd);
        (void)wire_bytes(&rd, 6); /* table oid, attnum */
        uint32_t type = wire_u32(&rd);
        (void)wire_bytes(&rd, 8); /* typlen, typmod, format */
        if (name) {
            h = mix(h, name, strlen(name));
        }
        h = mix(h, &type, sizeof(type));
    }
    return h;
}

/* A cut ErrorResponse still tells its SQLSTATE if that field arrived whole (PostgreSQL sends
 * it third, after the severities); else the SQLSTATE is unknown. */
static void fold_error(struct outcome *o, struct outcome_reader *r)
{
    struct wire_error_fields f;
    if (!o->error) {
        if (r->cut) {
            wire_error_keep_complete_fields(&r->small);
        }
        if (!r->small.failed && wire_parse_error(r->small.data, r->small.len, &f) == 0 &&
            f.sqlstate) {
            snprintf(o->sqlstate, sizeof(o->sqlstate), "%s", f.sqlstate);
            /* Unknown when the field was cut off: taken as raised inside code (it may be). */
            o->error_in_code = f.context != NULL || r->cut;
        } else if (r->cut) {
            o->unknown |= OUTCOME_UNKNOWN_SQLSTATE;
        }
    }
    if (!o->error) {
        o->commands_at_error = o->commands;
        o->acks_at_error = o->acks;
        o->tags_hash_at_error = o->tags_hash;
    }
    o->error = true;
}

uint32_t outcome_steps_done(const struct outcome *o, bool simple)
{
    return simple ? o->commands_at_error : o->commands_at_error + o->acks_at_error;
}

static void fold_tag(struct outcome *o, const char *tag, size_t len)
{
    o->commands++;
    o->tags_hash = mix(o->tags_hash, tag, len);
    snprintf(o->last_tag, sizeof(o->last_tag), "%.*s", (int)len, tag);
}

void outcome_end(struct outcome_reader *r, struct outcome *o)
{
    const struct wbuf *b = &r->small;
    switch (r->type) {
    case PqMsg_DataRow:
        o->rows++;
        o->rows_hash += XXH3_64bits_digest(r->row_state);
        return;
    case PqMsg_CommandComplete:
        if (r->cut) {
            o->commands++;
            o->unknown |= OUTCOME_UNKNOWN_TAGS;
            return;
        }
        fold_tag(o, (const char *)b->data, b->len ? strnlen((const char *)b->data, b->len) : 0);
        return;
    case PqMsg_EmptyQueryResponse:
        fold_tag(o, "", 0);
        return;
    case PqMsg_ErrorResponse:
        fold_error(o, r);
        return;
    case PqMsg_RowDescription:
        if (r->cut) {
            o->unknown |= OUTCOME_UNKNOWN_SHAPE;
            return;
        }
        o->shape_hash = mix(o->shape_hash, &(uint64_t){row_description_hash(b->data, b->len)}, 8);
        o->acks++; /* a Describe's answer in a batch (a simple Query counts commands only) */
        return;
    case PqMsg_ParseComplete:
    case PqMsg_BindComplete:
    case PqMsg_CloseComplete:
    case PqMsg_NoData:
    case PqMsg_PortalSuspended:
    case PqMsg_FunctionCallResponse:
        o->acks++;
        return;
    case PqMsg_ReadyForQuery:
        o->txn_status = b->len == 1 && !r->cut ? b->data[0] : '?';
        return;
    default:
        return;
    }
}

enum outcome_diff outcome_compare(const struct outcome *a, const struct outcome *b)
{
    unsigned unknown = a->unknown | b->unknown;
    if (a->error != b->error) {
        return OUTCOME_DIFF_error_mismatch;
    }
    if (a->error && !(unknown & OUTCOME_UNKNOWN_SQLSTATE) &&
        strcmp(a->sqlstate, b->sqlstate) != 0) {
        return OUTCOME_DIFF_sqlstate_mismatch;
    }
    if (a->commands != b->commands ||
        (!(unknown & OUTCOME_UNKNOWN_TAGS) && a->tags_hash != b->tags_hash)) {
        return OUTCOME_DIFF_tag_mismatch;
    }
    if (unknown & OUTCOME_UNKNOWN_ROWS) {
        return OUTCOME_DIFF_none;
    }
    if (a->rows != b->rows || a->rows_hash != b->rows_hash ||
        (!(unknown & OUTCOME_UNKNOWN_SHAPE) && a->shape_hash != b->shape_hash)) {
        return OUTCOME_DIFF_result_mismatch;
    }
    return OUTCOME_DIFF_none;
}

bool outcome_fully_compared(const struct outcome *a, const struct outcome *b)
{
    return (a->unknown | b->unknown) == 0;
}
