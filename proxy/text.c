/* proxy/text.c: printf-style and JSON-string appends to a wbuf; the UTC timestamp format. */
#include "proxy/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void text_put_fmt(struct wbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    wbuf_reserve(b, (size_t)n + 1); /* vsnprintf writes the NUL too; it is not counted */
    if (b->failed) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void text_put_json_str(struct wbuf *b, const char *s)
{
    wbuf_put_u8(b, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            wbuf_put_u8(b, '\\');
            wbuf_put_u8(b, *p);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            wbuf_put_bytes(b, esc, 6);
        } else {
            wbuf_put_u8(b, *p);
        }
    }
    wbuf_put_u8(b, '"');
}

void text_utc_time(time_t t, char out[TEXT_TIME_MAX])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, TEXT_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, TEXT_TIME_MAX, "%lld", (long long)t);
    }
}

/* The escape of byte c into esc (room for 5); its length. */
static size_t escape_one(unsigned char c, enum text_escape_mode mode, char esc[5])
{
    static const char hex[] = "0123456789abcdef";
    memset(esc, 0, 5);
    if ((c == '\\' && mode != TEXT_ESC_CONTROLS) || (c == '"' && mode == TEXT_ESC_QUOTED)) {
        esc[0] = '\\';
        esc[1] = (char)c;
    } else if (c == '\n' || c == '\r' || c == '\t') {
        esc[0] = '\\';
        esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    } else if (c < 0x20 || c == 0x7f) {
        esc[0] = '\\';
        esc[1] = 'x';
        esc[2] = hex[c >> 4];
        esc[3] = hex[c & 15];
    } else {
        esc[0] = (char)c;
    }
    return strlen(esc);
}

const char *text_escape(const char *in, char *out, size_t cap, enum text_escape_mode mode)
{
    const unsigned char *src = (const unsigned char *)(in ? in : "");
    char esc[5];
    size_t total = 0, o = 0;
    if (cap == 0) {
        return out;
    }
    for (const unsigned char *p = src; *p; p++) {
        total += escape_one(*p, mode, esc);
    }
    /* All of it when it fits; else whole escapes up to room for "..." and the NUL. */
    size_t room = total < cap ? cap - 1 : (cap > 4 ? cap - 4 : 0);
    for (const unsigned char *p = src; *p; p++) {
        size_t n = escape_one(*p, mode, esc);
        if (o + n > room) {
            break;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    if (total >= cap) {
        size_t dots = cap - 1 - o < 3 ? cap - 1 - o : 3;
        memcpy(out + o, "...", dots);
        o += dots;
    }
    out[o] = '\0';
    return out;
}
