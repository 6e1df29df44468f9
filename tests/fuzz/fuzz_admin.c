/* tests/fuzz/fuzz_admin.c: fuzz target: arbitrary bytes as an admin console query ->
 * admin_next_command, admin_split and admin_keywords_match (protocol/admin_parse.c). Every word
 * lies inside the text (or is the '=' word), no command or word runs past the text's end, and a
 * match means the keywords equal the leading words. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/admin_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A few command shapes, as proxy/control/admin.c's table has them. */
static const char *const fuzz_cmds[][ADMIN_CMD_WORDS] = {
    {"SHOW", "STATUS", NULL},
    {"SET", NULL, NULL},
    {"RECONCILE", "PROGRESS", NULL},
    {"ROLLBACK", "CUTOVER", NULL},
};

static void check_inside(const char *text, size_t len, const char *p)
{
    if (p < text || p > text + len || memchr(p, 0, (size_t)(text + len - p) + 1) == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        abort();
    }
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text); /* the console reads a NUL-terminated query */
    char *cursor = text;
    int commands = 0;
    for (char *cmd = admin_next_command(&cursor); cmd; cmd = admin_next_command(&cursor)) {
        check_inside(text, len, cmd);
        check_inside(text, len, cursor);
        if (cursor <= cmd || ++commands > (int)len + 1) {
            abort(); /* no progress: the console would loop */
        }
        char *argv[ADMIN_MAX_WORDS];
        int argc = admin_split(cmd, argv, ADMIN_MAX_WORDS);
        if (argc < -1 || argc > ADMIN_MAX_WORDS) {
            abort();
        }
        for (int i = 0; i < argc; i++) {
            if (strcmp(argv[i], "=") != 0) {
                check_inside(text, len, argv[i]);
            }
        }
        for (size_t c = 0; argc >= 0 && c < sizeof fuzz_cmds / sizeof fuzz_cmds[0]; c++) {
            int w = admin_keywords_match(fuzz_cmds[c], argv, argc);
            if (w > argc || w > ADMIN_CMD_WORDS) {
                abort();
            }
            for (int i = 0; i < w; i++) {
                if (strcasecmp(fuzz_cmds[c][i], argv[i]) != 0) {
                    abort(); /* matched a command the words do not name */
                }
            }
        }
    }
    free(text);
    return 0;
}
