/* tools/verify/keys.c: packed primary-key values and 128-bit decimal parsing. */
#include "tools/verify/keys.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tools/verify/util.h"

int keys_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) {
        return c;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

void keys_split(const char *key, size_t klen, int nkeys, const char **out)
{
    const char *p = key;
    for (int i = 0; i < nkeys; i++) {
        out[i] = p < key + klen ? p : "";
        p += strlen(out[i]) + 1;
    }
}

int keys_row_cmp(const void *a, const void *b)
{
    const struct keys_row *x = a, *y = b;
    return keys_cmp(x->key, x->klen, y->key, y->klen);
}

struct keys_row *keys_rows_dup(const struct keys_row *v, size_t n, size_t cap)
{
    struct keys_row *out = util_xcalloc(cap > n ? cap : n, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        out[i].key = util_xmemdup(v[i].key, v[i].klen);
        out[i].klen = v[i].klen;
        out[i].hash = v[i].hash;
    }
    return out;
}

void keys_rows_free(struct keys_row *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].key);
    }
    free(v);
}

int keys_parse_i128(const char *s, keys_i128 *out)
{
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    if (!*s || strlen(s) > 38) {
        return -1;
    }
    keys_i128 v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        v = v * 10 + (*s - '0');
    }
    *out = neg ? -v : v;
    return 0;
}
