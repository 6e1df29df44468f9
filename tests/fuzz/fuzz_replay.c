/* tests/fuzz/fuzz_replay.c: fuzz target: replay_build over arbitrary unit bytes and step counts.
 * The first input byte is the step count; the rest is the unit. Checks: no crash, a result is
 * one of the documented codes, and a successful rebuild is a whole number of well-formed
 * messages that ends with the failing statement's ReadyForQuery trigger (Query or Sync). */
#include <stdint.h>
#include <stdlib.h>

#include "protocol/pqproto.h"
#include "protocol/replay.h"
#include "protocol/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_messages(const struct wbuf *b)
{
    size_t off = 0;
    uint8_t last = 0;
    while (off < b->len) {
        if (b->len - off < 5) {
            abort();
        }
        const uint8_t *h = b->data + off;
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        if (len < 4 || len > b->len - off - 1) {
            abort();
        }
        last = h[0];
        off += (size_t)len + 1;
    }
    if (last != PqMsg_Query && last != PqMsg_Sync) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    struct wbuf out;
    wbuf_init(&out);
    struct replay_failure f;
    /* the first byte: steps done (low 7 bits), and whether the server reported a syntax error */
    int rc = replay_build(data + 1, size - 1, data[0] & 0x7f, (data[0] & 0x80) != 0, &out, &f);
    if (rc == 0) {
        check_messages(&out);
    } else if (rc != REPLAY_EUNSUPPORTED && rc != REPLAY_ESPLIT && rc != REPLAY_ENOMEM) {
        abort();
    }
    wbuf_free(&out);
    return 0;
}
