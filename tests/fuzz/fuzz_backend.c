/* tests/fuzz/fuzz_backend.c: fuzz target: arbitrary bytes as a backend's reply stream -> the
 * routed-read feed's path (wire_scan_feed into an outcome_reader) and the ErrorResponse decoder.
 * The same stream is folded twice, whole and in fuzzer-chosen chunks: the two outcomes must be
 * equal, since a reply's comparison hash cannot depend on how the bytes arrived. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/outcome.h"
#include "protocol/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LEN (256 * 1024) /* above OUTCOME_CAPTURE_MAX: cut messages are reachable */

struct fold {
    struct outcome_reader rd;
    struct outcome out;
    uint64_t data_rows; /* DataRow messages the scanner delivered */
    struct wbuf body;   /* the current ErrorResponse/NoticeResponse body, for the decoder */
    uint8_t type;
};

static int on_begin(void *ctx, uint8_t type, uint32_t body_len)
{
    struct fold *f = ctx;
    (void)body_len;
    f->type = type;
    wbuf_reset(&f->body);
    outcome_begin(&f->rd, type);
    return 0;
}

static int on_body(void *ctx, const uint8_t *p, size_t n)
{
    struct fold *f = ctx;
    outcome_body(&f->rd, p, n);
    if (f->type == 'E' || f->type == 'N') {
        wbuf_put_bytes(&f->body, p, n);
    }
    return 0;
}

/* A decoded field borrows the body: it must start inside it and end at a NUL inside it. */
static void check_field(const struct wbuf *b, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    if (s != NULL && (p < b->data || p >= b->data + b->len ||
                      memchr(p, 0, (size_t)(b->data + b->len - p)) == NULL)) {
        abort();
    }
}

static int on_end(void *ctx)
{
    struct fold *f = ctx;
    outcome_end(&f->rd, &f->out);
    if (f->type == 'D') {
        f->data_rows++;
    }
    if (f->type == 'E' || f->type == 'N') {
        struct wire_error_fields e;
        if (wire_parse_error(f->body.data, f->body.len, &e) == 0) {
            check_field(&f->body, e.severity);
            check_field(&f->body, e.sqlstate);
            check_field(&f->body, e.message);
        }
    }
    return 0;
}

static const struct wire_scan_ops fold_ops = {on_begin, on_body, on_end};

/* Folds data[0..size) in chunks of `chunk` bytes (0: whole). Returns the scanner's result. */
static int fold_stream(struct fold *f, const uint8_t *data, size_t size, size_t chunk)
{
    struct wire_scanner s;
    wire_scanner_init(&s, FUZZ_MAX_LEN);
    size_t off = 0;
    while (off < size) {
        size_t n = chunk == 0 || size - off < chunk ? size - off : chunk, used = 0;
        int rc = wire_scan_feed(&s, data + off, n, &fold_ops, f, &used);
        if (rc != 0) {
            return rc;
        }
        if (used != n) {
            abort(); /* no callback stops: every byte must be taken */
        }
        off += used;
    }
    return 0;
}

static bool outcomes_equal(const struct outcome *a, const struct outcome *b)
{
    return a->commands == b->commands && a->tags_hash == b->tags_hash &&
           strcmp(a->last_tag, b->last_tag) == 0 && a->error == b->error &&
           memcmp(a->sqlstate, b->sqlstate, sizeof a->sqlstate) == 0 && a->rows == b->rows &&
           a->rows_hash == b->rows_hash && a->shape_hash == b->shape_hash &&
           a->txn_status == b->txn_status && a->acks == b->acks &&
           a->commands_at_error == b->commands_at_error && a->acks_at_error == b->acks_at_error &&
           a->tags_hash_at_error == b->tags_hash_at_error && a->unknown == b->unknown;
}

static int fold_init(struct fold *f)
{
    memset(f, 0, sizeof *f);
    outcome_init(&f->out);
    wbuf_init(&f->body);
    return outcome_reader_init(&f->rd);
}

static void fold_free(struct fold *f)
{
    outcome_reader_free(&f->rd);
    wbuf_free(&f->body);
}

/* Byte 0 picks the chunk size; the rest is the backend's stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t chunk = (size_t)data[0] + 1;
    struct fold whole, parts;
    if (fold_init(&whole) != 0 || fold_init(&parts) != 0) {
        abort();
    }
    int rc_whole = fold_stream(&whole, data + 1, size - 1, 0);
    int rc_parts = fold_stream(&parts, data + 1, size - 1, chunk);
    if ((rc_whole != 0 && rc_whole != WIRE_EBADLEN) || rc_whole != rc_parts) {
        abort();
    }
    if (rc_whole == 0 && !outcomes_equal(&whole.out, &parts.out)) {
        abort(); /* the comparison hash depends on how the bytes arrived */
    }
    if (whole.out.rows != whole.data_rows) {
        abort(); /* every DataRow is counted once */
    }
    if (whole.out.error && whole.out.sqlstate[5] != '\0') {
        abort();
    }
    fold_free(&whole);
    fold_free(&parts);
    return 0;
}
