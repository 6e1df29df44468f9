/* tools/bench/classify_bench.c: ns per classify_cached call for pgbench's statements with new
 * literals in every statement (as pgbench -M simple sends them), with the cache looking texts up
 * by their literal-insensitive key (protocol/sql_key.h) and by the full text only (before the
 * key). Also ns per sql_key call alone.
 *
 *   build/tools/pgdual-classify-bench [statements per workload, default 200000]
 *
 * The texts are made before the clock starts (pgbench's random aid/tid/bid/delta, scale 10);
 * the cache has the size a worker's has (WORKER_CLASSIFY_CACHE = 4096 entries). Times are
 * the process's CPU time, not wall time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/classify.h"
#include "protocol/sql_key.h"

#define CACHE_ENTRIES 4096
#define TEXT_MAX      160

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n) /* xorshift64*: the same texts in every run */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (unsigned)((rng_state * 2685821657736338717ull) >> 33) % n;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: the machine is shared */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* pgbench's built-in scripts at scale 10, one statement per text. */
static void make_texts(char *texts, size_t n, bool tpcb)
{
    for (size_t i = 0; i < n; i++) {
        char *t = texts + i * TEXT_MAX;
        unsigned aid = 1 + rnd(1000000), tid = 1 + rnd(100), bid = 1 + rnd(10);
        int delta = (int)rnd(10001) - 5000;
        if (!tpcb) {
            snprintf(t, TEXT_MAX, "SELECT abalance FROM pgbench_accounts WHERE aid = %u;", aid);
            continue;
        }
        switch (i % 7) {
        case 0:
            snprintf(t, TEXT_MAX, "BEGIN;");
            break;
        case 1:
            snprintf(t, TEXT_MAX,
                     "UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %u;", delta,
                     aid);
            break;
        case 2:
            snprintf(t, TEXT_MAX, "SELECT abalance FROM pgbench_accounts WHERE aid = %u;", aid);
            break;
        case 3:
            snprintf(t, TEXT_MAX,
                     "UPDATE pgbench_tellers SET tbalance = tbalance + %d WHERE tid = %u;", delta,
                     tid);
            break;
        case 4:
            snprintf(t, TEXT_MAX,
                     "UPDATE pgbench_branches SET bbalance = bbalance + %d WHERE bid = %u;", delta,
                     bid);
            break;
        case 5:
            snprintf(t, TEXT_MAX,
                     "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (%u, %u, "
                     "%u, %d, CURRENT_TIMESTAMP);",
                     tid, bid, aid, delta);
            break;
        default:
            snprintf(t, TEXT_MAX, "END;");
            break;
        }
    }
}

/* ns per classify_cached call over the texts; also the parses it made. */
static double run_cached(const char *texts, size_t n, bool keys, unsigned long long *parses)
{
    struct classify_cache *c = classify_cache_new(CACHE_ENTRIES);
    if (c == NULL) {
        exit(1);
    }
    classify_cache_use_keys(c, keys);
    struct classify_result r;
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (classify_cached(c, texts + i * TEXT_MAX, NULL, &r) != 0) {
            exit(1);
        }
    }
    double t1 = now_ns();
    struct classify_cache_stats st;
    classify_cache_stats(c, &st);
    *parses = (unsigned long long)st.misses;
    classify_cache_free(c);
    return (t1 - t0) / (double)n;
}

static double run_key_only(const char *texts, size_t n)
{
    char key[SQL_KEY_CAP(TEXT_MAX)];
    long sum = 0;
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        const char *t = texts + i * TEXT_MAX;
        sum += sql_key(t, strlen(t), true, key, sizeof key, NULL);
    }
    double t1 = now_ns();
    if (sum < 0) {
        exit(1);
    }
    return (t1 - t0) / (double)n;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    if (n == 0) {
        n = 1;
    }
    char *texts = malloc(n * TEXT_MAX);
    if (texts == NULL) {
        return 1;
    }
    printf(
        "| workload | statements | full-text cache: ns/call (parses) | key cache: ns/call (parses) "
        "| sql_key alone: ns/call |\n|---|---:|---:|---:|---:|\n");
    for (int w = 0; w < 2; w++) {
        make_texts(texts, n, w == 1);
        unsigned long long p_full, p_key;
        double full = run_cached(texts, n, false, &p_full);
        double keyed = run_cached(texts, n, true, &p_key);
        double key_only = run_key_only(texts, n);
        printf("| %s | %zu | %.0f (%llu) | %.0f (%llu) | %.0f |\n",
               w == 0 ? "select-only" : "TPC-B (7 statements)", n, full, p_full, keyed, p_key,
               key_only);
    }
    free(texts);
    return 0;
}
