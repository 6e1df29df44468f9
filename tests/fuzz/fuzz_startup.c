/* tests/fuzz/fuzz_startup.c: fuzz target: arbitrary bytes -> wire_parse_startup, checking its
 * output. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pqproto.h"
#include "protocol/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A borrowed string must lie inside the input and end at a NUL inside it. */
static void check_inside(const uint8_t *data, size_t size, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    if (p < data || p >= data + size || memchr(p, 0, (size_t)(data + size - p)) == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_startup s;
    if (size > PQ_MAX_STARTUP_PACKET) {
        return 0; /* the caller bounds the packet before parsing it */
    }
    int rc = wire_parse_startup(data, size, &s);
    if (rc != 0 && rc != WIRE_ETRUNC && rc != WIRE_EPROTO) {
        abort();
    }
    if (rc != 0) {
        return 0;
    }
    if (size < 4 || s.nparams < 0 || s.nparams > WIRE_STARTUP_MAX_PARAMS) {
        abort();
    }
    for (int i = 0; i < s.nparams; i++) {
        check_inside(data, size, s.names[i]);
        check_inside(data, size, s.values[i]);
    }
    if (s.code == PG_PROTOCOL_V3) {
        const char *user = wire_startup_param(&s, "user");
        if (user == NULL || user[0] == '\0') {
            abort(); /* a v3 packet without a user must have been refused */
        }
    }
    if ((s.code == NEGOTIATE_SSL_CODE && size != 4) ||
        (s.code == CANCEL_REQUEST_CODE && size != 12)) {
        abort();
    }
    return 0;
}
