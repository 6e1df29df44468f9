/* proxy/dualwrite/divergence_table.c: the bounded, locked table of divergence groups behind
 * SHOW DIVERGENCES: an array of groups with an open-addressing index by (fingerprint, kind). */
#include "proxy/dualwrite/divergence_table.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dt_group {
    uint64_t fingerprint;
    char kind[DIVERGENCE_TABLE_KIND_MAX];
    uint64_t count;
    time_t first_seen, last_seen;
    uint64_t seq;    /* the table's add counter at the last add: orders same-second groups */
    char *statement; /* owned; NULL: not known (or no memory for it) */
    bool various;    /* fingerprint 0 seen with two different texts */
};

struct divergence_table {
    pthread_mutex_t lock; /* guards everything below */
    size_t max_groups;
    size_t ngroups;            /* used entries of groups[] */
    struct dt_group *groups;   /* max_groups entries, then the overflow row */
    uint32_t *index;           /* group number + 1 per slot; 0 = empty */
    size_t index_mask;         /* slots - 1 (a power of two, at least twice max_groups) */
    struct dt_group **scratch; /* max_groups + 1 entries: visit's sort order */
    uint64_t seq;
};

struct divergence_table *divergence_table_new(size_t max_groups)
{
    if (max_groups > UINT32_MAX / 4) {
        return NULL;
    }
    size_t slots = 16;
    while (slots < 2 * max_groups) {
        slots *= 2;
    }
    struct divergence_table *t = calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t->max_groups = max_groups;
    t->index_mask = slots - 1;
    t->groups = calloc(max_groups + 1, sizeof(*t->groups));
    t->index = calloc(slots, sizeof(*t->index));
    t->scratch = calloc(max_groups + 1, sizeof(*t->scratch));
    if (!t->groups || !t->index || !t->scratch || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->groups);
        free(t->index);
        free(t->scratch);
        free(t);
        return NULL;
    }
    struct dt_group *over = &t->groups[max_groups];
    snprintf(over->kind, sizeof(over->kind), "%s", DIVERGENCE_TABLE_OVERFLOW_KIND);
    return t;
}

void divergence_table_free(struct divergence_table *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->ngroups; i++) {
        free(t->groups[i].statement);
    }
    pthread_mutex_destroy(&t->lock);
    free(t->groups);
    free(t->index);
    free(t->scratch);
    free(t);
}

static uint64_t key_hash(uint64_t fingerprint, const char *kind)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a over the kind, then a splitmix64 finish */
    for (const unsigned char *p = (const unsigned char *)kind; *p; p++) {
        h = (h ^ *p) * 0x100000001b3u;
    }
    h ^= fingerprint;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

/* The slot holding (fingerprint, kind), or the empty slot where it would go. */
static uint32_t *find_slot(struct divergence_table *t, uint64_t fingerprint, const char *kind)
{
    size_t i = key_hash(fingerprint, kind) & t->index_mask;
    for (;;) {
        uint32_t *slot = &t->index[i];
        if (*slot == 0) {
            return slot;
        }
        const struct dt_group *g = &t->groups[*slot - 1];
        if (g->fingerprint == fingerprint && strcmp(g->kind, kind) == 0) {
            return slot;
        }
        i = (i + 1) & t->index_mask; /* never full: at most half the slots are used */
    }
}

/* stmt cut to fit DIVERGENCE_TABLE_STMT_MAX, at a UTF-8 character boundary, "..." marking a cut. */
static void stmt_cut(const char *stmt, char out[DIVERGENCE_TABLE_STMT_MAX])
{
    size_t len = strlen(stmt);
    if (len < DIVERGENCE_TABLE_STMT_MAX) {
        memcpy(out, stmt, len + 1);
        return;
    }
    size_t keep = DIVERGENCE_TABLE_STMT_MAX - 4; /* room for "..." and the NUL */
    while (keep > 0 && ((unsigned char)stmt[keep] & 0xC0) == 0x80) {
        keep--; /* stmt[keep] continues a character: cut before that character */
    }
    memcpy(out, stmt, keep);
    memcpy(out + keep, "...", 4);
}

/* A fingerprint-0 group gathers whatever statements had no fingerprint: once two texts differ
 * it shows neither. */
static void note_statement(struct dt_group *g, const char *stmt)
{
    if (g->fingerprint != 0 || g->various) {
        return;
    }
    char cut[DIVERGENCE_TABLE_STMT_MAX];
    stmt_cut(stmt ? stmt : DIVERGENCE_TABLE_UNKNOWN_STMT, cut);
    const char *have = g->statement ? g->statement : DIVERGENCE_TABLE_UNKNOWN_STMT;
    if (strcmp(have, cut) != 0) {
        g->various = true;
        free(g->statement);
        g->statement = NULL;
    }
}

static struct dt_group *new_group(struct divergence_table *t, uint32_t *slot, uint64_t fingerprint,
                                  const char *kind, const char *stmt, time_t now)
{
    struct dt_group *g = &t->groups[t->ngroups++];
    *slot = (uint32_t)t->ngroups;
    g->fingerprint = fingerprint;
    snprintf(g->kind, sizeof(g->kind), "%s", kind);
    g->first_seen = now;
    if (stmt) {
        char cut[DIVERGENCE_TABLE_STMT_MAX];
        stmt_cut(stmt, cut);
        g->statement = strdup(cut); /* NULL without memory: shown as not known */
    }
    return g;
}

void divergence_table_add(struct divergence_table *t, uint64_t fingerprint, const char *kind,
                          const char *statement, time_t now)
{
    char k[DIVERGENCE_TABLE_KIND_MAX];
    snprintf(k, sizeof(k), "%s", kind ? kind : "");
    pthread_mutex_lock(&t->lock);
    uint32_t *slot = find_slot(t, fingerprint, k);
    struct dt_group *g;
    if (*slot != 0) {
        g = &t->groups[*slot - 1];
        note_statement(g, statement);
    } else if (t->ngroups < t->max_groups) {
        g = new_group(t, slot, fingerprint, k, statement, now);
    } else {
        g = &t->groups[t->max_groups]; /* the overflow row */
        if (g->count == 0) {
            g->first_seen = now;
        }
    }
    g->count++;
    g->last_seen = now;
    g->seq = ++t->seq;
    pthread_mutex_unlock(&t->lock);
}

static int by_recency(const void *a, const void *b)
{
    const struct dt_group *x = *(const struct dt_group *const *)a;
    const struct dt_group *y = *(const struct dt_group *const *)b;
    if (x->last_seen != y->last_seen) {
        return x->last_seen > y->last_seen ? -1 : 1;
    }
    return x->seq > y->seq ? -1 : x->seq < y->seq ? 1 : 0;
}

static const char *group_statement(const struct divergence_table *t, const struct dt_group *g)
{
    if (g == &t->groups[t->max_groups]) {
        return DIVERGENCE_TABLE_OVERFLOW_STMT;
    }
    if (g->various) {
        return DIVERGENCE_TABLE_VARIOUS_STMT;
    }
    return g->statement ? g->statement : DIVERGENCE_TABLE_UNKNOWN_STMT;
}

size_t divergence_table_visit(struct divergence_table *t, divergence_group_fn fn, void *ctx)
{
    pthread_mutex_lock(&t->lock);
    size_t n = 0;
    for (size_t i = 0; i < t->ngroups; i++) {
        t->scratch[n++] = &t->groups[i];
    }
    if (t->groups[t->max_groups].count > 0) {
        t->scratch[n++] = &t->groups[t->max_groups];
    }
    qsort(t->scratch, n, sizeof(*t->scratch), by_recency);
    for (size_t i = 0; i < n; i++) {
        const struct dt_group *g = t->scratch[i];
        struct divergence_group view = {
            .fingerprint = g->fingerprint,
            .kind = g->kind,
            .count = g->count,
            .first_seen = g->first_seen,
            .last_seen = g->last_seen,
            .statement = group_statement(t, g),
        };
        fn(ctx, &view);
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}
