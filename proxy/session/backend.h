/* proxy/session/backend.h: one backend connection of a session: the libpq login driven by the loop,
 * then raw protocol bytes on its socket (libpq stays out of the data path). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "protocol/outcome.h"
#include "protocol/wire.h"
#include "proxy/session/endpoint.h"

struct session;
struct wire_startup;

struct backend {
    struct session *session;
    int which;    /* enum dial_backend: DIAL_OLD or DIAL_NEW */
    PGconn *conn; /* owns the socket; PQfinish'd when the session is freed */
    uv_loop_t *loop;
    uv_poll_t *login_poll; /* heap handle while logging in (libpq may change sockets) */
    int login_fd;
    bool up;                  /* login finished; ep is open */
    bool ep_closing;          /* ep's handle is closing: it may not be opened again yet */
    struct endpoint ep;       /* the data path once up */
    struct wire_scanner scan; /* splits what the backend sends */
    uint8_t cur_type;         /* message being scanned */
    bool capture;             /* capturing the current body into msg */
    bool msg_cut;             /* the body went past BACKEND_CAPTURE_MAX: msg holds its start */
    struct wbuf msg;          /* captured body (ReadyForQuery, ErrorResponse) */
    uint8_t txn_status;       /* last ReadyForQuery status: 'I', 'T' or 'E' */
    bool sent_fatal;          /* the backend sent a FATAL ErrorResponse before closing */
    struct outcome_reader rd; /* folds replies into the current unit's outcome */
    struct unit *cur_unit;    /* unit the current message belongs to (NULL: not compared) */
    /* Reported parameters that make the server lex statement texts otherwise than pgdual's
     * parser (see session_note_parameter). */
    bool scs_off;         /* standard_conforming_strings is off */
    bool encoding_unsafe; /* client_encoding may put a backslash byte inside a character */
    /* The settings that change how literals are read, as last reported (hashes). */
    uint64_t literal_hash[5];
    bool literal_seen[5];
};

/* The small messages pgdual itself reads from a backend's replies (ReadyForQuery,
 * ErrorResponse, ParameterStatus) are captured into b->msg while they stream, up to
 * BACKEND_CAPTURE_MAX bytes: past that only the first part is kept (msg_cut), never later chunks
 * spliced onto it. */
#define BACKEND_CAPTURE_MAX 8192
void backend_msg_begin(struct backend *b, uint8_t type);
void backend_msg_body(struct backend *b, const uint8_t *p, size_t n);
/* The message is complete. An ErrorResponse with severity FATAL or PANIC sets sent_fatal; a
 * ReadyForQuery sets txn_status; a ParameterStatus is noted (session_note_parameter). Returns the
 * message type if it was an ErrorResponse or a ReadyForQuery, else 0 (an ErrorResponse whose
 * capture ran out of memory is still reported, with b->msg.failed set). A cut ErrorResponse is kept
 * as the well-formed list of the fields that arrived whole (its severity and SQLSTATE come first);
 * a cut ReadyForQuery is not one (returns 0). */
uint8_t backend_msg_end(struct backend *b);

/* Start a non-blocking login to conninfo, filling user/dbname/application_name/options from the
 * client's startup packet where the conninfo leaves them out. Completion is reported through
 * session_backend_ready() / session_backend_failed(). */
int backend_login_start(struct backend *b, uv_loop_t *loop, const char *conninfo,
                        const struct wire_startup *startup, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Close libuv handles; cb (for the data endpoint) releases its session reference. */
void backend_close_handles(struct backend *b, uv_close_cb cb);
/* Free libpq and buffers (after every handle closed). */
void backend_free(struct backend *b);
