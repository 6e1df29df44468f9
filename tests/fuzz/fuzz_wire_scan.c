/* tests/fuzz/fuzz_wire_scan.c: fuzz target: arbitrary bytes -> wire_scan_feed in fuzzer-chosen
 * chunks, with callbacks that check the scanner's invariants. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "protocol/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LEN 4096 /* a small max_len makes WIRE_EBADLEN reachable */

/* What the callbacks have seen; every field is checked against the next event. */
struct fuzz_scan {
    bool in_msg;       /* between begin and end */
    uint32_t left;     /* body bytes still expected for the current message */
    uint8_t stop_type; /* begin returns 1 for this message type (0: never) */
    size_t msgs;
};

static int on_begin(void *ctx, uint8_t type, uint32_t body_len)
{
    struct fuzz_scan *f = ctx;
    if (f->in_msg || body_len > FUZZ_MAX_LEN - 4) {
        abort();
    }
    f->in_msg = true;
    f->left = body_len;
    f->msgs++;
    return f->stop_type != 0 && type == f->stop_type ? 1 : 0;
}

static int on_body(void *ctx, const uint8_t *p, size_t n)
{
    struct fuzz_scan *f = ctx;
    if (!f->in_msg || p == NULL || n == 0 || n > f->left) {
        abort();
    }
    f->left -= (uint32_t)n;
    return 0;
}

static int on_end(void *ctx)
{
    struct fuzz_scan *f = ctx;
    if (!f->in_msg || f->left != 0) {
        abort();
    }
    f->in_msg = false;
    return 0;
}

static const struct wire_scan_ops fuzz_ops = {on_begin, on_body, on_end};

/* Byte 0 picks the chunk size, byte 1 a message type to stop at; the rest is the stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_scanner s;
    struct fuzz_scan f = {0};
    if (size < 2) {
        return 0;
    }
    size_t chunk = (size_t)data[0] + 1, off = 2, used = 0;
    f.stop_type = data[1];
    wire_scanner_init(&s, FUZZ_MAX_LEN);
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        int rc = wire_scan_feed(&s, data + off, n, &fuzz_ops, &f, &used);
        if (used > n || (rc == 0 && used != n) || (rc < 0 && rc != WIRE_EBADLEN)) {
            abort();
        }
        if (rc < 0) {
            return 0;
        }
        if (s.in_body != f.in_msg) {
            abort(); /* the scanner and the callbacks disagree about where we are */
        }
        off += used;
        if (rc > 0 && used == 0 && wire_scanner_at_boundary(&s)) {
            abort(); /* stopped without progress: the caller would spin */
        }
    }
    return 0;
}
