/* tests/fuzz/fuzz_statefile.c: fuzz target: arbitrary bytes as a state file -> state_parse. What
 * parses formats back into a file that parses to the same dials and secondary state; a refusal
 * changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init_dials(struct dials *d)
{
    memset(d, 0, sizeof *d); /* padding too: the dials are compared with memcmp */
    d->read_new_percent = 7;
    d->compare_percent = 50;
    d->mirror = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dials d, before;
    struct state_secondary sec, sec_before;
    char err[256];
    init_dials(&d);
    memset(&sec, 0x5a, sizeof sec);
    before = d;
    sec_before = sec;
    if (state_parse((const char *)data, size, &d, &sec, err, sizeof err) != 0) {
        if (memcmp(&d, &before, sizeof d) != 0 || memcmp(&sec, &sec_before, sizeof sec) != 0) {
            abort(); /* a refused file must leave the caller's values alone */
        }
        return 0;
    }
    if (memchr(sec.name, 0, sizeof sec.name) == NULL ||
        memchr(sec.reconcile, 0, sizeof sec.reconcile) == NULL) {
        abort();
    }
    static char text[STATE_MAX_BYTES];
    int n = state_format(&d, sec.name[0] ? &sec : NULL, text, sizeof text);
    if (n < 0) {
        abort();
    }
    struct dials d2;
    struct state_secondary sec2;
    init_dials(&d2);
    memset(&sec2, 0, sizeof sec2);
    if (state_parse(text, (size_t)n, &d2, &sec2, err, sizeof err) != 0 ||
        memcmp(&d, &d2, sizeof d) != 0 || strcmp(sec.name, sec2.name) != 0) {
        abort(); /* a parsed file does not survive its own round trip */
    }
    if (sec.name[0] && (sec.since_ms != sec2.since_ms || sec.pass != sec2.pass ||
                        strcmp(sec.reconcile, sec2.reconcile) != 0)) {
        abort();
    }
    return 0;
}
