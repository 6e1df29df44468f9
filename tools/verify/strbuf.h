/* tools/verify/strbuf.h: growable byte buffer for SQL text, JSON and packed keys. */
#pragma once
#include <stddef.h>

/* Always NUL-terminated after the first append; len excludes the terminator. */
struct strbuf {
    char *p;
    size_t len, cap;
};

void strbuf_init(struct strbuf *b);
void strbuf_free(struct strbuf *b);
void strbuf_reset(struct strbuf *b);
void strbuf_put(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void strbuf_put_json(struct strbuf *b, const char *s);
/* Returns the contents (caller frees) and leaves b empty. */
char *strbuf_take(struct strbuf *b);
