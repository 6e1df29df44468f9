/* tests/fuzz/fuzz_configfile.c: fuzz target: arbitrary bytes as a pgdual.ini ->
 * config_parse_text. What parses is written back key by key (as SHOW CONFIG shows it) and parses
 * to the same configuration (secret values taken as stored, since SHOW CONFIG masks them). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "protocol/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The whole configuration as a file text: every key, section by section. Values that hold
 * characters an INI line cannot carry (newlines, a leading or trailing blank, ';' or '#' that
 * inih would take as a comment) or would make a line too long are left out, and *partial says
 * so. */
static void format_config(const struct config *c, struct wbuf *out, int *partial)
{
    char value[8192];
    const char *section = "";
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (config_key_secret(k)) { /* config_format masks it: take the value as stored */
            const char *raw = *(char *const *)((const char *)c + k->offset);
            snprintf(value, sizeof value, "%s", raw ? raw : "");
        } else {
            config_format(c, k, value, sizeof value);
        }
        size_t n = strlen(value);
        if (strpbrk(value, "\n\r;#") != NULL || strlen(k->name) + 3 + n > CONFIG_LINE_MAX ||
            (n > 0 && (value[0] == ' ' || value[0] == '\t' || value[n - 1] == ' ' ||
                       value[n - 1] == '\t' || value[n - 1] == '\\'))) {
            *partial = 1;
            continue;
        }
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            wbuf_put_bytes(out, "[", 1);
            wbuf_put_bytes(out, section, strlen(section));
            wbuf_put_bytes(out, "]\n", 2);
        }
        wbuf_put_bytes(out, k->name, strlen(k->name));
        wbuf_put_bytes(out, " = ", 3);
        wbuf_put_bytes(out, value, n);
        wbuf_put_bytes(out, "\n", 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    char err[512];
    config_init_defaults(&c);
    if (config_parse_text(&c, (const char *)data, size, "fuzz.ini", err, sizeof err) != 0) {
        if (err[0] == '\0') {
            abort(); /* a refusal says why */
        }
        config_free(&c);
        return 0;
    }
    struct wbuf text;
    int partial = 0;
    wbuf_init(&text);
    format_config(&c, &text, &partial);
    if (text.failed) {
        abort();
    }
    struct config back;
    config_init_defaults(&back);
    if (config_parse_text(&back, (const char *)text.data, text.len, "again.ini", err, sizeof err) !=
        0) {
        if (!partial) {
            abort(); /* pgdual's own rendering of a good config does not parse */
        }
    } else if (!partial) {
        for (const struct config_key *k = config_keys; k->name; k++) {
            if (!config_key_equal(&c, &back, k)) {
                abort();
            }
        }
    }
    config_free(&back);
    wbuf_free(&text);
    config_free(&c);
    return 0;
}
