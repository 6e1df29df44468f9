/* protocol/admin_parse.c: the admin console's command syntax (see admin_parse.h). */
#include "protocol/admin_parse.h"

#include <ctype.h>
#include <stddef.h>
#include <strings.h>

/* The word '=' stands for; shared by every split and never written. */
static char admin_word_eq[] = "=";

char *admin_next_command(char **cursor)
{
    char *start = *cursor;
    if (start == NULL || *start == '\0') {
        return NULL;
    }
    char quote = 0;
    char *p = start;
    for (; *p; p++) {
        /* a quote opens a string where admin_split takes it as one: at the start of a word */
        bool word_start = p == start || isspace((unsigned char)p[-1]) || p[-1] == '=';
        if (quote) {
            quote = *p == quote ? 0 : quote;
        } else if ((*p == '\'' || *p == '"') && word_start) {
            quote = *p;
        } else if (*p == ';') {
            *p = '\0';
            *cursor = p + 1;
            return start;
        }
    }
    *cursor = p;
    return start;
}

int admin_split(char *p, char **argv, int max)
{
    int argc = 0;
    while (*p) {
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (!*p) {
            break;
        }
        if (argc == max) {
            return -1;
        }
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            argv[argc++] = p;
            while (*p && *p != q) {
                p++;
            }
            if (!*p) {
                return -1;
            }
            *p++ = '\0';
        } else if (*p == '=') {
            argv[argc++] = admin_word_eq;
            p++;
        } else {
            argv[argc++] = p;
            while (*p && !isspace((unsigned char)*p) && *p != '=') {
                p++;
            }
            if (*p == '=') { /* "key=value": '=' is its own word */
                *p++ = '\0';
                if (argc == max) {
                    return -1;
                }
                argv[argc++] = admin_word_eq;
            } else if (*p) {
                *p++ = '\0';
            }
        }
    }
    return argc;
}

int admin_keywords_match(const char *const kw[ADMIN_CMD_WORDS], char *const *argv, int argc)
{
    int w = 0;
    while (w < ADMIN_CMD_WORDS && kw[w]) {
        if (w >= argc || strcasecmp(kw[w], argv[w]) != 0) {
            return -1;
        }
        w++;
    }
    return w;
}
