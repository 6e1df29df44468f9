/* proxy/text.h: appending text to a wbuf: printf-style, and as a JSON string literal. Used by
 * the divergence log and the metrics endpoint. Pure: no I/O. */
#pragma once
#include <time.h>

#include "protocol/wire.h"

#define TEXT_TIME_MAX 32 /* room for text_utc_time's output */

/* Append the formatted text (no NUL). On allocation failure b->failed is set, as for every
 * wbuf writer. */
void text_put_fmt(struct wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s (NULL = "") as a JSON string with its quotes, escaped as RFC 8259 requires. */
void text_put_json_str(struct wbuf *b, const char *s);
/* t as ISO-8601 UTC to the second ("2024-05-01T12:00:00Z"), as the divergence log's "time" and
 * SHOW DIVERGENCES show it. */
void text_utc_time(time_t t, char out[TEXT_TIME_MAX]);
