/* proxy/session/stmt_map.c: chained hash table of statement or portal names (FNV-1a over the name
 * cut to STMT_NAME_MAX bytes), doubling while the load passes one entry per bucket. */
#include "proxy/session/stmt_map.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/pin.h"

#define STMT_MAP_MIN_BUCKETS 16

static size_t name_len(const char *name)
{
    return strnlen(name, STMT_NAME_MAX);
}

static uint64_t name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static bool name_equal(const struct stmt_entry *e, const char *name, size_t len)
{
    return strncmp(e->name, name, len) == 0 && e->name[len] == '\0';
}

struct stmt_entry *stmt_map_find(const struct stmt_map *m, const char *name)
{
    if (!m->buckets) {
        return NULL;
    }
    size_t len = name_len(name);
    struct stmt_entry *e = m->buckets[name_hash(name, len) & m->mask];
    while (e && !name_equal(e, name, len)) {
        e = e->chain;
    }
    return e;
}

/* Rehash into twice as many buckets (or the first ones). */
static int grow(struct stmt_map *m)
{
    size_t nb = m->buckets ? (m->mask + 1) * 2 : STMT_MAP_MIN_BUCKETS;
    struct stmt_entry **b = calloc(nb, sizeof(*b));
    if (!b) {
        return -1;
    }
    for (size_t i = 0; m->buckets && i <= m->mask; i++) {
        struct stmt_entry *e = m->buckets[i];
        while (e) {
            struct stmt_entry *next = e->chain;
            size_t at = name_hash(e->name, strlen(e->name)) & (nb - 1);
            e->chain = b[at];
            b[at] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->mask = nb - 1;
    return 0;
}

struct stmt_entry *stmt_map_get(struct stmt_map *m, const char *name)
{
    struct stmt_entry *e = stmt_map_find(m, name);
    if (e) {
        return e;
    }
    if (stmt_map_full(m)) {
        return NULL;
    }
    if ((!m->buckets || m->count > m->mask) && grow(m) < 0 && !m->buckets) {
        return NULL; /* a failed grow with buckets only lengthens the chains */
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        return NULL;
    }
    size_t len = name_len(name);
    memcpy(e->name, name, len);
    size_t at = name_hash(name, len) & m->mask;
    e->chain = m->buckets[at];
    m->buckets[at] = e;
    m->count++;
    return e;
}

void stmt_class_release(struct stmt_class *c)
{
    free(c->sql);
    c->sql = NULL;
    free(c->parse_msg);
    c->parse_msg = NULL;
    c->parse_len = 0;
    pin_shape_unref(c->pin);
    c->pin = NULL;
    pin_cte_stmt_unref(c->pin_cte);
    c->pin_cte = NULL;
    c->unpinned = NULL; /* a released class keeps nothing: its entry may go (stmt_track.c) */
    c->unpinned_table[0] = '\0';
}

void stmt_map_remove(struct stmt_map *m, struct stmt_entry *e)
{
    struct stmt_entry **link = &m->buckets[name_hash(e->name, strlen(e->name)) & m->mask];
    while (*link != e) {
        link = &(*link)->chain;
    }
    *link = e->chain;
    m->count--;
    stmt_class_release(&e->cls);
    free(e);
}

void stmt_map_sweep(struct stmt_map *m, bool (*fn)(struct stmt_entry *e, void *arg), void *arg)
{
    for (size_t i = 0; m->buckets && i <= m->mask; i++) {
        struct stmt_entry **link = &m->buckets[i];
        while (*link) {
            struct stmt_entry *e = *link;
            if (fn(e, arg)) {
                *link = e->chain;
                m->count--;
                stmt_class_release(&e->cls);
                free(e);
            } else {
                link = &e->chain;
            }
        }
    }
}

static bool remove_all(struct stmt_entry *e, void *arg)
{
    (void)e;
    (void)arg;
    return true;
}

void stmt_map_free(struct stmt_map *m)
{
    stmt_map_sweep(m, remove_all, NULL);
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}
