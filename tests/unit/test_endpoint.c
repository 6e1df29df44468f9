/* tests/unit/test_endpoint.c: proxy/session/endpoint.c over a real socket pair and a libuv loop:
 * reads turned off lazily (the interest stays until a readable event comes, which the owner never
 * sees), turned on again without a restart, and queued writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/session/endpoint.h"

struct owner {
    struct endpoint ep;
    int calls, readable, writable;
    char got[64];
    size_t ngot;
};

static void on_io(uv_poll_t *h, int status, int events)
{
    struct owner *o = h->data;
    assert_int_equal(status, 0);
    o->calls++;
    if (events & UV_WRITABLE) {
        o->writable++;
        assert_int_equal(endpoint_flush(&o->ep), 0);
    }
    if (endpoint_readable(&o->ep, events)) {
        o->readable++;
        ssize_t n = endpoint_read(&o->ep, o->got + o->ngot, sizeof(o->got) - o->ngot);
        if (n > 0) {
            o->ngot += (size_t)n;
        }
    }
}

struct fixture {
    uv_loop_t loop;
    int fds[2];
    struct owner o;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f->fds), 0);
    f->o.ep.fd = -1;
    assert_int_equal(endpoint_open(&f->o.ep, &f->loop, f->fds[0], NULL, on_io, &f->o), 0);
    *state = f;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    endpoint_close(&f->o.ep, on_closed);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    endpoint_free(&f->o.ep);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->fds[0]);
    close(f->fds[1]);
    free(f);
    return 0;
}

/* Turn the loop until nothing more happens (a socket pair's events are ready at once). */
static void spin(struct fixture *f)
{
    for (int i = 0; i < 8; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
}

static void peer_writes(struct fixture *f, const char *s)
{
    assert_int_equal(write(f->fds[1], s, strlen(s)), (ssize_t)strlen(s));
}

static void test_reads_by_default(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->o.ep.events, UV_READABLE);
    peer_writes(f, "abc");
    spin(f);
    assert_int_equal(f->o.readable, 1);
    assert_int_equal(f->o.ngot, 3);
    assert_memory_equal(f->o.got, "abc", 3);
}

static void test_off_then_on_before_data_keeps_the_interest(void **state)
{
    struct fixture *f = *state;
    endpoint_want_read(&f->o.ep, false);
    assert_false(f->o.ep.want_read);
    assert_int_equal(f->o.ep.events, UV_READABLE); /* lazy: still registered */
    spin(f);
    assert_int_equal(f->o.calls, 0);
    endpoint_want_read(&f->o.ep, true);
    assert_int_equal(f->o.ep.events, UV_READABLE);
    peer_writes(f, "xy");
    spin(f);
    assert_int_equal(f->o.ngot, 2);
}

static void test_data_while_off_is_never_passed_on(void **state)
{
    struct fixture *f = *state;
    endpoint_want_read(&f->o.ep, false);
    peer_writes(f, "held");
    spin(f);
    /* The readable event came: the interest is dropped, the owner saw nothing. */
    assert_int_equal(f->o.calls, 0);
    assert_int_equal(f->o.ep.events, 0);
    spin(f);
    assert_int_equal(f->o.calls, 0);
    endpoint_want_read(&f->o.ep, true);
    assert_int_equal(f->o.ep.events, UV_READABLE);
    spin(f);
    assert_int_equal(f->o.readable, 1);
    assert_int_equal(f->o.ngot, 4);
    assert_memory_equal(f->o.got, "held", 4);
}

static void test_writable_passed_on_while_reads_are_off(void **state)
{
    struct fixture *f = *state;
    int sz = 4096;
    assert_int_equal(setsockopt(f->fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
    static char big[1 << 20];
    memset(big, 'z', sizeof(big));
    assert_int_equal(endpoint_send(&f->o.ep, big, sizeof(big)), 0);
    assert_true(endpoint_pending(&f->o.ep) > 0);
    assert_true(f->o.ep.events & UV_WRITABLE);
    endpoint_want_read(&f->o.ep, false);
    peer_writes(f, "q");
    /* Drain the peer so the queue can go; the owner gets writable events, never readable. */
    char sink[65536];
    for (int i = 0; i < 10000 && endpoint_pending(&f->o.ep) > 0; i++) {
        while (read(f->fds[1], sink, sizeof(sink)) > 0) {
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(endpoint_pending(&f->o.ep), 0);
    assert_true(f->o.writable > 0);
    assert_int_equal(f->o.readable, 0);
    assert_int_equal(f->o.ep.events & UV_WRITABLE, 0);
    endpoint_want_read(&f->o.ep, true);
    spin(f);
    assert_int_equal(f->o.readable, 1);
    assert_int_equal(f->o.ngot, 1);
}

static void test_discard_stops_reading_at_once(void **state)
{
    struct fixture *f = *state;
    endpoint_discard(&f->o.ep);
    assert_int_equal(f->o.ep.events, 0);
    peer_writes(f, "gone");
    spin(f);
    assert_int_equal(f->o.calls, 0);
    assert_int_equal(endpoint_send(&f->o.ep, "dropped", 7), 0);
    assert_int_equal(endpoint_pending(&f->o.ep), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_then_on_before_data_keeps_the_interest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_data_while_off_is_never_passed_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_passed_on_while_reads_are_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_discard_stops_reading_at_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
