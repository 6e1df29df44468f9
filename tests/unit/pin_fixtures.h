/* tests/unit/pin_fixtures.h: catalog rows for the pin tests (test_pin.c, test_pin_shape.c), built
 * as pin_catalog_query's 8 text columns would come from the server. Included by one test file
 * each, after cmocka.h. */
#pragma once
#include <string.h>

#include "protocol/pin.h"
#include "protocol/wire.h"

/* One catalog row (a DataRow body of pin_catalog_query's 8 text columns; NULL: SQL NULL). */
static int add_row(struct pin_table *t, const char *const v[8])
{
    struct wbuf b;
    wbuf_init(&b);
    wbuf_put_u16(&b, 8);
    for (int i = 0; i < 8; i++) {
        wbuf_put_u32(&b, v[i] ? (uint32_t)strlen(v[i]) : 0xffffffffu);
        wbuf_put_bytes(&b, v[i], v[i] ? strlen(v[i]) : 0);
    }
    assert_false(b.failed);
    int rc = pin_table_add_row(t, b.data, b.len, NULL);
    wbuf_free(&b);
    return rc;
}

/* A column of table qname: flags g generated, i identity, p pk, j json; def NULL: none. */
static void col(struct pin_table *t, const char *qname, const char *name, const char *flags,
                const char *def)
{
    const char *v[8] = {qname,
                        "",
                        name,
                        strchr(flags, 'g') ? "t" : "f",
                        strchr(flags, 'i') ? "t" : "f",
                        def,
                        strchr(flags, 'p') ? "t" : "f",
                        strchr(flags, 'j') ? "t" : "f"};
    assert_int_equal(add_row(t, v), 0);
}

/* public.t: id serial pk, v plain, ts DEFAULT now(), g generated, j json. */
static void table_t(struct pin_table *t)
{
    memset(t, 0, sizeof(*t));
    col(t, "public.t", "id", "p", "nextval('t_id_seq'::regclass)");
    col(t, "public.t", "v", "", NULL);
    col(t, "public.t", "ts", "", "now()");
    col(t, "public.t", "g", "g", "(v * 2)");
    col(t, "public.t", "j", "j", NULL);
}
