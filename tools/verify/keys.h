/* tools/verify/keys.h: packed primary-key values (each column's text form + NUL) and 128-bit sums.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* 128-bit integer for exact sums of 64-bit row hashes; __extension__ keeps -Wpedantic quiet
 * (a typedef so the extension keyword is written once). */
__extension__ typedef __int128 keys_i128;

/* One row seen in a leaf range: its packed key and the hash of its text form. */
struct keys_row {
    char *key;   /* packed: col1 '\0' col2 '\0' ... (owned) */
    size_t klen; /* bytes including every NUL */
    int64_t hash;
};

/* Orders packed keys bytewise (any total order works: both sides use the same). */
int keys_cmp(const char *a, size_t alen, const char *b, size_t blen);
/* Points out[0..nkeys-1] at the columns of a packed key (no copies). */
void keys_split(const char *key, size_t klen, int nkeys, const char **out);
/* qsort comparator for struct keys_row. */
int keys_row_cmp(const void *a, const void *b);
/* A copy of rows v[0..n-1] (keys copied) in an array of cap >= n entries, the rest zeroed. */
struct keys_row *keys_rows_dup(const struct keys_row *v, size_t n, size_t cap);
/* Frees the keys of v[0..n-1] and v itself (NULL v: nothing). */
void keys_rows_free(struct keys_row *v, size_t n);
/* Parses a decimal integer of up to 38 digits; returns 0 or -1. */
int keys_parse_i128(const char *s, keys_i128 *out) __attribute__((warn_unused_result));
