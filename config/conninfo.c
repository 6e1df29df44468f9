/* config/conninfo.c: libpq connection strings with their secrets masked (SHOW CONFIG, logs). */
#include "config/conninfo.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* A bounded writer: keeps writing what fits, remembers whether anything was cut. */
struct mask_out {
    char *p;
    size_t cap, len;
    bool cut;
};

static void put(struct mask_out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (o->len + 1 < o->cap) {
            o->p[o->len++] = s[i];
        } else {
            o->cut = true;
        }
    }
}

static void put_mask(struct mask_out *o)
{
    put(o, CONNINFO_MASK, strlen(CONNINFO_MASK));
}

bool conninfo_key_secret(const char *key, size_t len)
{
    static const char word[] = "password";
    size_t wl = sizeof(word) - 1;
    for (size_t i = 0; i + wl <= len; i++) {
        if (strncasecmp(key + i, word, wl) == 0) {
            return true;
        }
    }
    return false;
}

/* One keyword = value pair at *pp (past leading blanks); copies or masks it, advances *pp. */
static void mask_pair(const char **pp, struct mask_out *o)
{
    const char *p = *pp;
    const char *key = p;
    while (*p && *p != '=' && !isspace((unsigned char)*p)) {
        p++;
    }
    size_t klen = (size_t)(p - key);
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p != '=') { /* not a pair (libpq refuses it): copy the word as written */
        put(o, key, (size_t)(p - key));
        *pp = p;
        return;
    }
    p++;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    const char *val = p;
    if (*p == '\'') {
        p++;
        while (*p && *p != '\'') {
            p += (*p == '\\' && p[1]) ? 2 : 1;
        }
        if (*p == '\'') {
            p++;
        }
    } else {
        while (*p && !isspace((unsigned char)*p)) {
            p += (*p == '\\' && p[1]) ? 2 : 1;
        }
    }
    put(o, key, (size_t)(val - key));
    if (conninfo_key_secret(key, klen)) {
        put_mask(o);
    } else {
        put(o, val, (size_t)(p - val));
    }
    *pp = p;
}

/* The query part of a URI (after '?'): key=value pairs separated by '&'. */
static void mask_uri_query(const char *p, struct mask_out *o)
{
    while (*p) {
        const char *key = p;
        size_t klen = strcspn(p, "=&#");
        p += klen;
        put(o, key, klen);
        if (*p != '=') {
            if (*p) {
                put(o, p++, 1);
            }
            continue;
        }
        put(o, p++, 1);
        size_t vlen = strcspn(p, "&#");
        if (conninfo_key_secret(key, klen)) {
            put_mask(o);
        } else {
            put(o, p, vlen);
        }
        p += vlen;
        if (*p) {
            put(o, p++, 1);
        }
    }
}

/* postgresql://[user[:password]@]host...: libpq takes credentials up to the first '@' met
 * before any '/' (uri parse in fe-connect.c). */
static void mask_uri(const char *uri, size_t scheme_len, struct mask_out *o)
{
    const char *p = uri + scheme_len;
    put(o, uri, scheme_len);
    size_t upto = strcspn(p, "@/");
    if (p[upto] == '@') {
        const char *colon = memchr(p, ':', upto);
        if (colon) {
            put(o, p, (size_t)(colon - p) + 1);
            put_mask(o);
            put(o, "@", 1);
        } else {
            put(o, p, upto + 1);
        }
        p += upto + 1;
    }
    size_t rest = strcspn(p, "?");
    put(o, p, rest);
    p += rest;
    if (*p == '?') {
        put(o, p++, 1);
        mask_uri_query(p, o);
    }
}

bool conninfo_mask(const char *conninfo, char *out, size_t cap)
{
    struct mask_out o = {out, cap, 0, false};
    const char *p = conninfo ? conninfo : "";
    static const char *const schemes[] = {"postgresql://", "postgres://"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(p, schemes[i], n) == 0) {
            mask_uri(p, n, &o);
            goto done;
        }
    }
    while (*p) {
        if (isspace((unsigned char)*p)) {
            put(&o, p++, 1);
            continue;
        }
        mask_pair(&p, &o);
    }
done:
    if (cap > 0) {
        out[o.len] = '\0';
    }
    return !o.cut && cap > 0;
}

bool conninfo_error_safe(const char *msg)
{
    static const char *const safe[] = {"invalid connection option \"",
                                       "unterminated quoted string in connection info string"};
    for (size_t i = 0; msg && i < sizeof(safe) / sizeof(safe[0]); i++) {
        if (strncmp(msg, safe[i], strlen(safe[i])) == 0) {
            return true;
        }
    }
    return false;
}
