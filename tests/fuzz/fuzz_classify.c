/* tests/fuzz/fuzz_classify.c: fuzz target: arbitrary bytes -> classify_statement, classify_cached
 * classify_normalize and classify_effects, checking the invariants protocol/classify.h promises for
 * any text. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs are skipped: the parser is linear, but a corpus replay should stay fast. */
#define FUZZ_MAX_TEXT      (1u << 16)
/* A small cache, kept across inputs, so that eviction, hits and clears all happen. */
#define FUZZ_CACHE_ENTRIES 8

static const char *const fuzz_funcs[] = {"f", "s.g", "lower"};
static const struct classify_options fuzz_opt = {fuzz_funcs, 3};

static bool txn_valid(enum classify_txn t)
{
    return t >= CLASSIFY_TXN_NONE && t <= CLASSIFY_TXN_OTHER;
}

/* Statements are separated by ';', so a string holds at most one more than it has. */
static int max_statements(const char *sql)
{
    int n = 1;
    for (const char *p = strchr(sql, ';'); p != NULL; p = strchr(p + 1, ';')) {
        n++;
    }
    return n;
}

/* The invariants of one result for the text it came from. */
static void check_result(const char *sql, int rc, const struct classify_result *r)
{
    if (rc != 0 && rc != CLASSIFY_ENOMEM) {
        abort(); /* EINVAL only for NULL arguments */
    }
    if ((r->kind != CLASSIFY_READ && r->kind != CLASSIFY_MIRROR) || !txn_valid(r->txn) ||
        !txn_valid(r->txn_last)) {
        abort();
    }
    if (rc != 0 || r->parse_error) {
        /* Nothing was parsed: conservative MIRROR, no statement, no flag. */
        if (r->kind != CLASSIFY_MIRROR || r->nstatements != 0 || r->fingerprint != 0 ||
            r->txn_control || r->txn != CLASSIFY_TXN_NONE || r->txn_last != CLASSIFY_TXN_NONE ||
            r->is_listen || r->is_copy_from || r->is_copy_to || r->nondeterministic) {
            abort();
        }
        return;
    }
    if (r->nstatements < 0 || r->nstatements > max_statements(sql)) {
        abort();
    }
    if (r->nstatements == 0 && (r->kind != CLASSIFY_READ || r->txn_control || r->is_listen ||
                                r->is_copy_from || r->is_copy_to || r->nondeterministic)) {
        abort(); /* empty or comments only: nothing executes */
    }
    /* A read goes to one backend: nothing in it may change state on either. */
    if (r->kind == CLASSIFY_READ && (r->txn_control || r->is_listen || r->is_copy_from)) {
        abort();
    }
    if ((r->txn != CLASSIFY_TXN_NONE || r->txn_last != CLASSIFY_TXN_NONE) && !r->txn_control) {
        abort();
    }
    if (r->nstatements == 1 && r->txn != r->txn_last) {
        abort();
    }
}

/* classify_cached must answer exactly what classify_statement answers, on a miss and a hit. */
static void check_cached(struct classify_cache *c, const char *sql,
                         const struct classify_options *opt, const struct classify_result *want)
{
    struct classify_result r;
    for (int i = 0; i < 2; i++) {
        int rc = classify_cached(c, sql, opt, &r);
        check_result(sql, rc, &r);
        if (rc == 0 && !classify_result_equal(&r, want)) {
            abort();
        }
    }
    if (classify_cache_count(c) > FUZZ_CACHE_ENTRIES) {
        abort();
    }
}

/* The same text padded with spaces to exactly len bytes: trailing blanks change nothing, and
 * len around CLASSIFY_CACHE_MAX_TEXT exercises both the cached and the uncached path. */
static void check_padded(struct classify_cache *c, const char *sql, size_t sql_len, size_t len,
                         const struct classify_options *opt, const struct classify_result *want)
{
    char *p = malloc(len + 1);
    if (p == NULL) {
        return;
    }
    memcpy(p, sql, sql_len);
    memset(p + sql_len, ' ', len - sql_len);
    p[len] = '\0';
    check_cached(c, p, opt, want);
    free(p);
}

/* classify_normalize: NULL or a NUL-terminated heap string; NULL whenever the text does not
 * parse (the normalizer uses the same parser). */
static void check_normalize(const char *sql, const struct classify_result *r)
{
    char *n = classify_normalize(sql);
    if (n != NULL && r->parse_error) {
        abort();
    }
    if (n != NULL) {
        volatile size_t len = strlen(n); /* ASan: the whole string is readable */
        (void)len;
    }
    free(n);
}

/* classify_effects: found exactly when session_objects says so, names NUL-terminated and at
 * most CLASSIFY_NAME_MAX bytes, statement indexes in range and increasing. */
static void check_effects(const char *sql, const struct classify_result *r)
{
    struct classify_effect fx[8];
    size_t n = 0;
    int rc = classify_effects(sql, fx, 8, &n);
    if ((rc == CLASSIFY_EPARSE) != r->parse_error || n > 8 ||
        (rc == 0 && (n > 0) != r->session_objects)) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (strnlen(fx[i].name, sizeof fx[i].name) > CLASSIFY_NAME_MAX || fx[i].stmt < 0 ||
            fx[i].stmt >= r->nstatements || (i > 0 && fx[i].stmt <= fx[i - 1].stmt)) {
            abort();
        }
    }
}

static void check_null_arguments(struct classify_cache *c)
{
    struct classify_result r;
    if (classify_statement(NULL, NULL, &r) != CLASSIFY_EINVAL || r.kind != CLASSIFY_MIRROR ||
        classify_cached(c, NULL, NULL, &r) != CLASSIFY_EINVAL || r.kind != CLASSIFY_MIRROR ||
        classify_statement("SELECT 1", NULL, NULL) != CLASSIFY_EINVAL ||
        classify_normalize(NULL) != NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct classify_cache *cache; /* reachable until exit: not a leak */
    if (cache == NULL) {
        cache = classify_cache_new(FUZZ_CACHE_ENTRIES);
        if (cache == NULL) {
            abort();
        }
        check_null_arguments(cache);
    }
    if (size > FUZZ_MAX_TEXT) {
        return 0;
    }
    /* An exact-size NUL-terminated copy: the text ends at the first NUL byte of the input. */
    char *sql = malloc(size + 1);
    if (sql == NULL) {
        return 0;
    }
    memcpy(sql, data, size);
    sql[size] = '\0';
    size_t len = strlen(sql);
    /* The first byte picks the options, so the cache also sees option changes. */
    const struct classify_options *opt = size > 0 && (data[0] & 1) ? &fuzz_opt : NULL;

    struct classify_result want, again;
    int rc = classify_statement(sql, opt, &want);
    check_result(sql, rc, &want);
    if (rc == 0) {
        if (classify_statement(sql, opt, &again) != 0 || !classify_result_equal(&want, &again)) {
            abort(); /* deterministic */
        }
        check_cached(cache, sql, opt, &want);
        if (len < CLASSIFY_CACHE_MAX_TEXT) {
            check_padded(cache, sql, len, CLASSIFY_CACHE_MAX_TEXT, opt, &want);
            check_padded(cache, sql, len, CLASSIFY_CACHE_MAX_TEXT + 1, opt, &want);
        }
    }
    check_normalize(sql, &want);
    if (rc == 0) {
        check_effects(sql, &want);
    }
    free(sql);
    return 0;
}
