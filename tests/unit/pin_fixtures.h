/* tests/unit/pin_fixtures.h: catalog rows for the pin tests (test_pin.c, test_pin_shape.c), built
 * as pin_catalog_query's 12 text columns would come from the server. Included by one test file
 * each, after cmocka.h. */
#pragma once
#include <string.h>

#include "protocol/pin.h"
#include "protocol/wire.h"

/* One catalog row (a DataRow body of pin_catalog_query's 12 text columns; NULL: SQL NULL): v's
 * 8 first, then the trigger event masks (values, writes), the relkind and a view's queries. */
static int add_row_kind(struct pin_table *t, const char *const v[8], const char *tvalues,
                        const char *twrites, const char *relkind, const char *defs)
{
    struct wbuf b;
    wbuf_init(&b);
    wbuf_put_u16(&b, 12);
    const char *all[12] = {v[0], v[1], v[2],    v[3],    v[4],    v[5],
                           v[6], v[7], tvalues, twrites, relkind, defs};
    for (int i = 0; i < 12; i++) {
        wbuf_put_u32(&b, all[i] ? (uint32_t)strlen(all[i]) : 0xffffffffu);
        wbuf_put_bytes(&b, all[i], all[i] ? strlen(all[i]) : 0);
    }
    assert_false(b.failed);
    int rc = pin_table_add_row(t, b.data, b.len, NULL);
    wbuf_free(&b);
    return rc;
}

static int add_row_trig(struct pin_table *t, const char *const v[8], const char *tvalues,
                        const char *twrites)
{
    return add_row_kind(t, v, tvalues, twrites, "r", NULL);
}

/* A row of a table without triggers that may make up values or write. */
static int add_row(struct pin_table *t, const char *const v[8])
{
    return add_row_trig(t, v, "0", "0");
}

/* The catalog's kind of a column of flags (pin_catalog.c): j json, b jsonb, a an array. */
static const char *kind_of(const char *flags)
{
    return strchr(flags, 'j') ? "j" : strchr(flags, 'b') ? "b" : strchr(flags, 'a') ? "a" : "p";
}

/* A column of table qname: flags g generated, i identity, p pk, j json, b jsonb, a an array;
 * def NULL: none. */
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
                        kind_of(flags)};
    assert_int_equal(add_row(t, v), 0);
}

/* public.t: id serial pk, v plain, ts DEFAULT now(), g generated, j plain. */
static void table_t(struct pin_table *t)
{
    memset(t, 0, sizeof(*t));
    col(t, "public.t", "id", "p", "nextval('t_id_seq'::regclass)");
    col(t, "public.t", "v", "", NULL);
    col(t, "public.t", "ts", "", "now()");
    col(t, "public.t", "g", "g", "(v * 2)");
    col(t, "public.t", "j", "", NULL);
    /* The shapes' expected texts below leave out the per-execution check of the columns' kinds
     * (test_shape_extras has it): as for a table made in the same text. */
    t->kinds_known = false;
}
