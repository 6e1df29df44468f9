/* tests/harness/raw.c: see raw.h. */
#include "tests/harness/raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int raw_connect(const struct proxy *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        it_note("raw connect: %s", strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

bool raw_send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w <= 0) {
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* Reads exactly len bytes before the deadline. Returns len, 0 on EOF/reset, -1 on timeout. */
int raw_recv_exact(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        int left = (int)(deadline - it_now_ms());
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) == 0) {
            return -1;
        }
        ssize_t r = recv(fd, buf + got, len - got, 0);
        if (r <= 0) {
            return 0;
        }
        got += (size_t)r;
    }
    return (int)len;
}

/* One backend message: type and payload (truncated to cap). Returns 1, 0 on EOF, -1 on timeout or
 * an impossible length. */
int raw_read_msg(int fd, char *type, uint8_t *payload, size_t cap, uint32_t *plen, int timeout)
{
    int64_t deadline = it_now_ms() + timeout;
    uint8_t h[5];
    int r = raw_recv_exact(fd, h, 5, deadline);
    if (r <= 0) {
        return r;
    }
    uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
    if (len < 4 || len - 4 > cap) {
        it_note("backend message '%c' with length %u", h[0], len);
        return -1;
    }
    *type = (char)h[0];
    *plen = len - 4;
    return raw_recv_exact(fd, payload, len - 4, deadline) == (int)(len - 4) ? 1 : 0;
}

/* SQLSTATE ('C' field) of an ErrorResponse payload into out[6]. */
bool raw_error_sqlstate(const uint8_t *p, uint32_t len, char *out)
{
    uint32_t i = 0;
    while (i < len && p[i] != 0) {
        char field = (char)p[i++];
        const char *val = (const char *)p + i;
        size_t vl = strnlen(val, len - i);
        if (field == 'C' && vl == 5) {
            memcpy(out, val, 6);
            return true;
        }
        i += (uint32_t)vl + 1;
    }
    return false;
}

size_t raw_build_startup(const struct proxy *p, uint8_t *b, uint32_t version)
{
    size_t n = 8;
    const char *kv[] = {"user", p->cluster.user, "database", p->dbname};
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(kv[i]) + 1;
        memcpy(b + n, kv[i], l);
        n += l;
    }
    b[n++] = 0;
    const uint32_t be[2] = {htonl((uint32_t)n), htonl(version)};
    memcpy(b, be, 8);
    return n;
}

int raw_session(const struct proxy *p)
{
    int fd = raw_connect(p);
    uint8_t b[512];
    if (fd < 0 || !raw_send_all(fd, b, raw_build_startup(p, b, 196608))) {
        return -1;
    }
    for (;;) {
        char t = 0;
        uint32_t len = 0;
        static uint8_t payload[65536];
        if (raw_read_msg(fd, &t, payload, sizeof payload, &len, 5000) != 1 || t == 'E') {
            it_note("startup failed (message '%c')", t);
            close(fd);
            return -1;
        }
        if (t == 'Z') {
            return fd;
        }
    }
}

void raw_msg_begin(struct raw_msg *m, char type)
{
    m->start = m->n;
    m->b[m->n++] = (uint8_t)type;
    m->n += 4;
}

void raw_put_bytes(struct raw_msg *m, const void *p, size_t len)
{
    memcpy(m->b + m->n, p, len);
    m->n += len;
}

void raw_put_str(struct raw_msg *m, const char *s)
{
    raw_put_bytes(m, s, strlen(s) + 1);
}

void raw_put_u16(struct raw_msg *m, uint16_t v)
{
    uint16_t be = htons(v);
    raw_put_bytes(m, &be, 2);
}

void raw_put_u32(struct raw_msg *m, uint32_t v)
{
    uint32_t be = htonl(v);
    raw_put_bytes(m, &be, 4);
}

void raw_msg_end(struct raw_msg *m)
{
    uint32_t be = htonl((uint32_t)(m->n - m->start - 1));
    memcpy(m->b + m->start + 1, &be, 4);
}

void raw_add_query(struct raw_msg *m, const char *sql)
{
    raw_msg_begin(m, 'Q');
    raw_put_str(m, sql);
    raw_msg_end(m);
}
