/* protocol/wire.h: pure codec for PostgreSQL v3 messages: bounds-checked reader, message writer,
 * and a zero-copy stream scanner that splits a byte stream into messages. No I/O, no clock. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes returned by this module (negative, libuv style). */
#define WIRE_ETRUNC  (-1001) /* message shorter than its fields */
#define WIRE_EBADLEN (-1002) /* length field outside [4, max] */
#define WIRE_ENOMEM  (-1003)
#define WIRE_EPROTO  (-1004) /* structurally invalid content */

/* ---- reader: a cursor over one message body with a sticky failure flag ---------------- */

struct wire_reader {
    const uint8_t *p;
    size_t len, off;
    bool failed; /* set by the first out-of-bounds read; every later read returns 0/NULL */
};

static inline void wire_reader_init(struct wire_reader *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->failed = false;
}

static inline size_t wire_remaining(const struct wire_reader *r)
{
    return r->failed ? 0 : r->len - r->off;
}

uint8_t wire_u8(struct wire_reader *r);
uint16_t wire_u16(struct wire_reader *r);
uint32_t wire_u32(struct wire_reader *r);
/* A NUL-terminated string inside the buffer; borrowed pointer, NULL (and failed) if no NUL. */
const char *wire_cstr(struct wire_reader *r);
/* n raw bytes, borrowed; NULL (and failed) if fewer remain. */
const uint8_t *wire_bytes(struct wire_reader *r, size_t n);

/* ---- writer: a growable buffer that builds whole messages ----------------------------- */

struct wbuf {
    uint8_t *data;
    size_t len, cap;
    bool failed; /* allocation failed: contents are garbage, caller must drop the buffer */
};

void wbuf_init(struct wbuf *b);
void wbuf_free(struct wbuf *b);
void wbuf_reset(struct wbuf *b); /* keeps the allocation for reuse */
/* Empty the buffer, and give its allocation back if it grew past keep bytes (one big message
 * must not pin its memory for the rest of a session). */
void wbuf_shrink(struct wbuf *b, size_t keep);
/* Allocation a session's scratch buffers keep between messages (wbuf_shrink). */
#define WBUF_KEEP (256 * 1024)
/* Make sure at least n more bytes fit (the only growth path). */
void wbuf_reserve(struct wbuf *b, size_t n);
void wbuf_put_u8(struct wbuf *b, uint8_t v);
void wbuf_put_u16(struct wbuf *b, uint16_t v);
void wbuf_put_u32(struct wbuf *b, uint32_t v);
void wbuf_put_bytes(struct wbuf *b, const void *p, size_t n);
void wbuf_put_cstr(struct wbuf *b, const char *s); /* includes the NUL */
/* Start a typed message; returns the offset to pass to wbuf_end_msg, which patches the length. */
size_t wbuf_begin_msg(struct wbuf *b, uint8_t type);
void wbuf_end_msg(struct wbuf *b, size_t start);

/* Message builders (server -> client). */
void wire_put_error(struct wbuf *b, const char *severity, const char *sqlstate, const char *msg);
void wire_put_notice(struct wbuf *b, const char *severity, const char *sqlstate, const char *msg);
void wire_put_auth(struct wbuf *b, uint32_t code, const void *data, size_t n);
void wire_put_parameter_status(struct wbuf *b, const char *name, const char *value);
void wire_put_backend_key(struct wbuf *b, uint32_t pid, uint32_t secret);
void wire_put_ready(struct wbuf *b, uint8_t txn_status);
/* RowDescription of ncols text columns named names[i]. */
void wire_put_row_description(struct wbuf *b, int ncols, const char *const *names);
/* DataRow of ncols text values; NULL pointer means SQL NULL. */
void wire_put_data_row(struct wbuf *b, int ncols, const char *const *values);
void wire_put_command_complete(struct wbuf *b, const char *tag);
void wire_put_empty_query(struct wbuf *b);
/* A simple Query (client -> server): pgdual's own statements to a backend. */
void wire_put_query(struct wbuf *b, const char *sql);
/* pgdual's own statement for a backend a client's session uses, through a statement and portal of
 * its own name (Close both, Parse, Bind, Execute, Close the portal, Sync): unlike a simple Query
 * it leaves the client's unnamed statement and portal alone. Answered by CloseComplete x2,
 * ParseComplete, BindComplete, its rows, CommandComplete, CloseComplete (or an ErrorResponse)
 * and ReadyForQuery. */
void wire_put_own_statement(struct wbuf *b, const char *name, const char *sql);

/* One whole message inside a buffer of whole messages (a unit's frontend messages). */
struct wire_msg {
    uint8_t type;
    const uint8_t *whole; /* type byte first */
    size_t whole_len;
    const uint8_t *body;
    size_t body_len;
};
/* The message at *off (advanced past it), or -1 when the bytes end inside a header or body. */
int wire_next_msg(const uint8_t *p, size_t len, size_t *off, struct wire_msg *m);

/* ---- decoders for the message bodies the proxy looks at ------------------------------- */

/* ErrorResponse / NoticeResponse fields; pointers borrow the body, absent fields are NULL. */
struct wire_error_fields {
    const char *severity; /* 'V' (non-localized) or else 'S' */
    const char *sqlstate; /* 'C' */
    const char *message;  /* 'M' */
    const char *context;  /* 'W': where, inside a function or DO block, it was raised */
};
int wire_parse_error(const uint8_t *body, size_t len, struct wire_error_fields *out)
    __attribute__((warn_unused_result));
/* b holds the first bytes of an ErrorResponse / NoticeResponse body that was cut (too long to
 * keep whole): drop its last field if it is incomplete and terminate the field list, so b is a
 * well-formed body made of the complete fields that arrived, never a field with a cut value. */
void wire_error_keep_complete_fields(struct wbuf *b);

/* ---- untyped startup packets ---------------------------------------------------------- */

#define WIRE_STARTUP_MAX_PARAMS 64

struct wire_startup {
    uint32_t code; /* PG_PROTOCOL_V3, CANCEL_REQUEST_CODE, NEGOTIATE_SSL_CODE, ... */
    /* StartupMessage: name/value pairs borrowing the body. */
    int nparams;
    const char *names[WIRE_STARTUP_MAX_PARAMS];
    const char *values[WIRE_STARTUP_MAX_PARAMS];
    /* CancelRequest */
    uint32_t cancel_pid, cancel_secret;
};
/* body = the packet after its 4-byte length. Validates the shape for the code it carries
 * (a v3 StartupMessage must end with an empty name and name a user). */
int wire_parse_startup(const uint8_t *body, size_t len, struct wire_startup *out)
    __attribute__((warn_unused_result));
const char *wire_startup_param(const struct wire_startup *s, const char *name);

/* ---- scanner: split a stream of typed messages without copying ------------------------ */

/* Callbacks return 0 to go on, > 0 to stop after the current message, < 0 to abort. */
struct wire_scan_ops {
    int (*begin)(void *ctx, uint8_t type, uint32_t body_len); /* header complete */
    int (*body)(void *ctx, const uint8_t *p, size_t n);       /* part of the body, in order */
    int (*end)(void *ctx);                                    /* body complete */
};

struct wire_scanner {
    uint32_t max_len;   /* largest accepted length field (includes the 4 length bytes) */
    uint8_t hdr[5];     /* partial header carried across feeds */
    uint8_t hdr_have;   /* bytes of hdr filled */
    uint8_t type;       /* current message type */
    uint32_t body_left; /* body bytes still to come of the current message */
    bool in_body;
    int pending_stop; /* a positive callback value waiting for the end of its message */
};

void wire_scanner_init(struct wire_scanner *s, uint32_t max_len);
/* True when the scanner stands exactly between two messages. */
static inline bool wire_scanner_at_boundary(const struct wire_scanner *s)
{
    return !s->in_body && s->hdr_have == 0;
}
/* Feed n bytes. *consumed tells how many were taken (all, unless a callback stopped early).
 * Returns 0, the first positive callback value, a negative callback value, or WIRE_EBADLEN. */
int wire_scan_feed(struct wire_scanner *s, const uint8_t *p, size_t n,
                   const struct wire_scan_ops *ops, void *ctx, size_t *consumed)
    __attribute__((warn_unused_result));
