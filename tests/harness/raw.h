/* tests/harness/raw.h: a client on a raw socket, for tests that must send or read protocol
 * messages libpq never would (bad input, suspended portals). Blocking, with timeouts. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/harness/proxy.h"

/* A TCP connection to pgdual (p->port) on 127.0.0.1, or -1. */
int raw_connect(const struct proxy *p);
bool raw_send_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes before deadline (it_now_ms). Returns len, 0 on EOF/reset, -1 on
 * timeout. */
int raw_recv_exact(int fd, uint8_t *buf, size_t len, int64_t deadline);
/* One backend message: type and payload (truncated to cap). Returns 1, 0 on EOF, -1 on timeout or
 * an impossible length. */
int raw_read_msg(int fd, char *type, uint8_t *payload, size_t cap, uint32_t *plen, int timeout_ms);
/* SQLSTATE ('C' field) of an ErrorResponse payload into out[6]. */
bool raw_error_sqlstate(const uint8_t *payload, uint32_t len, char *out);
/* A StartupMessage for p's user and database with this protocol version into b (>= 512 bytes). */
size_t raw_build_startup(const struct proxy *p, uint8_t *b, uint32_t version);
/* Connects and completes a v3 startup, reading up to ReadyForQuery. Returns the fd or -1. */
int raw_session(const struct proxy *p);

/* Frontend messages built in a fixed buffer: raw_msg_begin, then raw_put_* body parts, then
 * raw_msg_end patches the length. Several messages may follow each other in one buffer. */
struct raw_msg {
    uint8_t b[2048];
    size_t n, start;
};
void raw_msg_begin(struct raw_msg *m, char type);
void raw_put_bytes(struct raw_msg *m, const void *p, size_t len);
void raw_put_str(struct raw_msg *m, const char *s); /* with its NUL */
void raw_put_u16(struct raw_msg *m, uint16_t v);
void raw_put_u32(struct raw_msg *m, uint32_t v);
void raw_msg_end(struct raw_msg *m);
/* A whole simple Query message. */
void raw_add_query(struct raw_msg *m, const char *sql);
