/* tools/verify/table.c: one table being compared during a pass, with its SQL fragments. */
#include "tools/verify/table.h"

#include <stdlib.h>
#include <string.h>

#include "tools/verify/discover.h"
#include "tools/verify/options.h"

static char *col_list(const struct discover_side *sd, const int *idx, int n, const char *alias,
                      const char *suffix)
{
    struct strbuf b;
    strbuf_init(&b);
    for (int i = 0; i < n; i++) {
        strbuf_printf(&b, "%s%s.%s%s", i ? ", " : "", alias, sd->cols[idx ? idx[i] : i].qname,
                      suffix);
    }
    return strbuf_take(&b);
}

void table_init(struct table *t, struct pool *p, const struct options *o,
                const struct discover_table *def, struct result_table *res, struct progress *prog)
{
    memset(t, 0, sizeof *t);
    t->pool = p;
    t->opt = o;
    t->def = def;
    t->primary = o->primary;
    t->ref = discover_ref(def, o->primary);
    t->res = res;
    t->prog = prog;
    t->leaf_rows = TABLE_LEAF_ROWS;
    const struct discover_side *sd = t->ref;
    char *all = col_list(sd, NULL, sd->ncols, "t", "");
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "hashtextextended(ROW(%s)::text, 0)", all);
    free(all);
    t->rowhash = strbuf_take(&b);
    t->keycols = col_list(sd, sd->keys, sd->nkeys, "t", "");
    t->keytext = col_list(sd, sd->keys, sd->nkeys, "t", "::text");
    t->subkeytext = col_list(sd, sd->keys, sd->nkeys, "s", "::text");
    t->allcols = col_list(sd, NULL, sd->ncols, "t", "::text");
}

void table_free(struct table *t)
{
    free(t->rowhash);
    free(t->keycols);
    free(t->keytext);
    free(t->subkeytext);
    free(t->allcols);
}

void table_key_params(const struct table *t, struct strbuf *b, int first)
{
    for (int k = 0; k < t->ref->nkeys; k++) {
        strbuf_printf(b, "%s$%d::%s", k ? ", " : "", first + k, t->ref->cols[t->ref->keys[k]].type);
    }
}

void table_key_cmp(const struct table *t, struct strbuf *b, const char *op, int first)
{
    strbuf_printf(b, "(%s) %s (", t->keycols, op);
    table_key_params(t, b, first);
    strbuf_puts(b, ")");
}

void table_range_pred(const struct table *t, struct strbuf *b, bool has_lo, bool has_hi, int first)
{
    if (has_lo) {
        table_key_cmp(t, b, ">=", first);
        first += t->ref->nkeys;
    }
    if (has_lo && has_hi) {
        strbuf_puts(b, " AND ");
    }
    if (has_hi) {
        table_key_cmp(t, b, "<", first);
    }
    if (!has_lo && !has_hi) {
        strbuf_puts(b, "true");
    }
}
