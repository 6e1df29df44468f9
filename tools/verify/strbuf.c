/* tools/verify/strbuf.c: growable byte buffer for SQL text, JSON and packed keys. */
#include "tools/verify/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/verify/util.h"

void strbuf_init(struct strbuf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void strbuf_free(struct strbuf *b)
{
    free(b->p);
    strbuf_init(b);
}

void strbuf_reset(struct strbuf *b)
{
    b->len = 0;
    if (b->p) {
        b->p[0] = '\0';
    }
}

static void grow(struct strbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap * 2 : 128;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    b->p = util_xrealloc(b->p, cap);
    b->cap = cap;
}

void strbuf_put(struct strbuf *b, const char *s, size_t n)
{
    grow(b, n);
    if (n) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
}

void strbuf_puts(struct strbuf *b, const char *s)
{
    strbuf_put(b, s, strlen(s));
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        grow(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void strbuf_put_json(struct strbuf *b, const char *s)
{
    strbuf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};
            strbuf_put(b, esc, 2);
        } else if (*c < 0x20) {
            strbuf_printf(b, "\\u%04x", *c);
        } else {
            strbuf_put(b, (const char *)c, 1);
        }
    }
    strbuf_put(b, "\"", 1);
}

char *strbuf_take(struct strbuf *b)
{
    char *p = b->p ? b->p : util_xstrdup("");
    strbuf_init(b);
    return p;
}
