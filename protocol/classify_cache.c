/* protocol/classify_cache.c: bounded per-worker cache of classification results keyed by the
 * statement's literal-insensitive key (protocol/sql_key.h) or, for a text without one, by the
 * text itself: chained hash table over a fixed entry array, CLOCK eviction. */
#include <stdlib.h>
#include <string.h>

#include "protocol/classify.h"
#include "protocol/sql_key.h"

#define SLOT_NONE SIZE_MAX

struct cache_entry {
    char *text; /* owned copy of the key or statement; NULL when the slot is unused */
    size_t len;
    bool keyed; /* text is a key (sql_key), not a statement: the two never match each other */
    uint64_t hash;
    size_t next;     /* next entry in the same bucket, or SLOT_NONE */
    bool referenced; /* CLOCK bit: set on a hit, cleared as the hand passes */
    struct classify_result res;
};

struct classify_cache {
    size_t max;   /* capacity in entries */
    size_t count; /* slots [0, count) are in use */
    size_t hand;  /* CLOCK hand over the slots */
    size_t mask;  /* buckets - 1 (a power of two, at least 2 * max) */
    size_t *buckets;
    struct cache_entry *entries;
    /* The options the cached results were computed with; another pointer clears the cache.
     * Options must not be mutated while a cache holds results made with them. */
    const struct classify_options *opt;
    bool use_keys; /* look texts up by their key (the default) */
    char *key;     /* scratch: SQL_KEY_CAP(CLASSIFY_CACHE_MAX_TEXT) bytes */
    struct classify_cache_stats stats;
};

/* FNV-1a, 64 bit. Not keyed: chains are bounded by max anyway. */
static uint64_t text_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

struct classify_cache *classify_cache_new(size_t max_entries)
{
    if (max_entries == 0 || max_entries > SIZE_MAX / 4 / sizeof(struct cache_entry)) {
        return NULL;
    }
    size_t nb = 2;
    while (nb < 2 * max_entries) {
        nb *= 2;
    }
    struct classify_cache *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->buckets = malloc(nb * sizeof c->buckets[0]);
    c->entries = calloc(max_entries, sizeof c->entries[0]);
    c->key = malloc(SQL_KEY_CAP(CLASSIFY_CACHE_MAX_TEXT));
    c->use_keys = true;
    if (c->buckets == NULL || c->entries == NULL || c->key == NULL) {
        classify_cache_free(c);
        return NULL;
    }
    for (size_t i = 0; i < nb; i++) {
        c->buckets[i] = SLOT_NONE;
    }
    c->max = max_entries;
    c->mask = nb - 1;
    return c;
}

static void cache_clear(struct classify_cache *c)
{
    for (size_t i = 0; i < c->count; i++) {
        free(c->entries[i].text);
        c->entries[i].text = NULL;
    }
    for (size_t i = 0; i <= c->mask; i++) {
        c->buckets[i] = SLOT_NONE;
    }
    c->count = 0;
    c->hand = 0;
}

void classify_cache_free(struct classify_cache *c)
{
    if (c == NULL) {
        return;
    }
    if (c->entries != NULL && c->buckets != NULL) {
        cache_clear(c);
    }
    free(c->entries);
    free(c->buckets);
    free(c->key);
    free(c);
}

size_t classify_cache_count(const struct classify_cache *c)
{
    return c != NULL ? c->count : 0;
}

void classify_cache_stats(const struct classify_cache *c, struct classify_cache_stats *out)
{
    if (c != NULL) {
        *out = c->stats;
    } else {
        memset(out, 0, sizeof *out);
    }
}

void classify_cache_use_keys(struct classify_cache *c, bool on)
{
    if (c != NULL && c->use_keys != on) {
        cache_clear(c);
        c->use_keys = on;
    }
}

static struct cache_entry *cache_find(struct classify_cache *c, const char *sql, size_t len,
                                      uint64_t h, bool keyed)
{
    for (size_t i = c->buckets[h & c->mask]; i != SLOT_NONE; i = c->entries[i].next) {
        struct cache_entry *e = &c->entries[i];
        if (e->hash == h && e->len == len && e->keyed == keyed && memcmp(e->text, sql, len) == 0) {
            return e;
        }
    }
    return NULL;
}

static void cache_unlink(struct classify_cache *c, size_t slot)
{
    size_t *link = &c->buckets[c->entries[slot].hash & c->mask];
    while (*link != SLOT_NONE && *link != slot) {
        link = &c->entries[*link].next;
    }
    if (*link == slot) {
        *link = c->entries[slot].next;
    }
}

/* A free slot, or the first unreferenced one under the CLOCK hand (emptied). */
static size_t cache_take_slot(struct classify_cache *c)
{
    if (c->count < c->max) {
        return c->count++;
    }
    for (;;) {
        size_t slot = c->hand;
        c->hand = (c->hand + 1) % c->max;
        struct cache_entry *e = &c->entries[slot];
        if (e->referenced) {
            e->referenced = false;
            continue;
        }
        cache_unlink(c, slot);
        free(e->text);
        e->text = NULL;
        return slot;
    }
}

static void cache_insert(struct classify_cache *c, const char *sql, size_t len, uint64_t h,
                         bool keyed, const struct classify_result *res)
{
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return; /* not cached; the result is still returned */
    }
    memcpy(copy, sql, len);
    copy[len] = '\0';
    size_t slot = cache_take_slot(c);
    struct cache_entry *e = &c->entries[slot];
    e->text = copy;
    e->len = len;
    e->keyed = keyed;
    e->hash = h;
    e->referenced = false;
    e->res = *res;
    e->next = c->buckets[h & c->mask];
    c->buckets[h & c->mask] = slot;
}

int classify_cached(struct classify_cache *c, const char *sql, const struct classify_options *opt,
                    struct classify_result *out)
{
    if (c == NULL || sql == NULL || out == NULL) {
        return classify_statement(sql, opt, out);
    }
    size_t len = strnlen(sql, CLASSIFY_CACHE_MAX_TEXT + 1);
    if (len > CLASSIFY_CACHE_MAX_TEXT) {
        return classify_statement(sql, opt, out);
    }
    if (opt != c->opt) {
        cache_clear(c);
        c->opt = opt;
    }
    /* The key: libpg_query lexes with standard_conforming_strings on, so the key does too (while
     * a backend has it off, the session mirrors every statement whatever the class). */
    const char *text = sql;
    size_t tlen = len;
    long klen = c->use_keys
                    ? sql_key(sql, len, true, c->key, SQL_KEY_CAP(CLASSIFY_CACHE_MAX_TEXT), NULL)
                    : -1;
    bool keyed = klen >= 0;
    if (keyed) {
        text = c->key;
        tlen = (size_t)klen;
    } else {
        c->stats.unkeyed++;
    }
    uint64_t h = text_hash(text, tlen);
    struct cache_entry *e = cache_find(c, text, tlen, h, keyed);
    if (e != NULL) {
        e->referenced = true;
        *out = e->res;
        c->stats.hits++;
        return 0;
    }
    int rc = classify_statement(sql, opt, out);
    if (rc < 0) {
        return rc;
    }
    c->stats.misses++;
    cache_insert(c, text, tlen, h, keyed, out);
    return 0;
}
