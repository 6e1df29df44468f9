/* proxy/text.h: appending text to a wbuf: printf-style, and as a JSON string literal. Used by
 * the divergence log and the metrics endpoint. Pure: no I/O. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "protocol/wire.h"

#define TEXT_TIME_MAX     32 /* room for text_utc_time's output */
/* Room for text_escape's output of a session's user or database name (63 bytes, 4 each). */
#define TEXT_NAME_ESC_MAX (64 * 4)

/* Append the formatted text (no NUL). On allocation failure b->failed is set, as for every
 * wbuf writer. */
void text_put_fmt(struct wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s (NULL = "") as a JSON string with its quotes, escaped as RFC 8259 requires. */
void text_put_json_str(struct wbuf *b, const char *s);
/* t as ISO-8601 UTC to the second ("2024-05-01T12:00:00Z"), as the divergence log's "time" and
 * SHOW DIVERGENCES show it. */
void text_utc_time(time_t t, char out[TEXT_TIME_MAX]);
/* What text_escape escapes besides control bytes and DEL (always: \n, \r, \t, \xNN). */
enum text_escape_mode {
    TEXT_ESC_CONTROLS, /* nothing more: a whole log line stays one line */
    TEXT_ESC_NAME,     /* and backslash: a client-supplied name, unambiguous */
    TEXT_ESC_QUOTED,   /* and backslash and double quote: a name shown between quotes */
};

/* A client-supplied name (user, database) or a log line made safe for the log: C-style escapes
 * as mode says; other bytes (UTF-8 included) pass. out holds cap bytes and is always
 * NUL-terminated; what does not fit is cut at a whole escape and ends with "...". Returns out. */
const char *text_escape(const char *in, char *out, size_t cap, enum text_escape_mode mode);
