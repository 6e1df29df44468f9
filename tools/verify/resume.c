/* tools/verify/resume.c: --resume FILE, the backfill's planned and finished ranges. */
#include "tools/verify/resume.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/verify/strbuf.h"

static void put_hex(struct strbuf *b, bool has, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!has) {
        strbuf_puts(b, "-");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char two[2] = {hex[(unsigned char)p[i] >> 4], hex[(unsigned char)p[i] & 15]};
        strbuf_put(b, two, 2);
    }
    if (n == 0) {
        strbuf_puts(b, "=");
    }
}

static int get_hex(const char *s, bool *has, char **out, size_t *n)
{
    *has = strcmp(s, "-") != 0;
    *out = NULL;
    *n = 0;
    if (!*has) {
        return 0;
    }
    if (!strcmp(s, "=")) {
        *out = util_xstrdup("");
        return 0;
    }
    size_t len = strlen(s);
    if (len % 2 || strspn(s, "0123456789abcdef") != len) {
        return -1;
    }
    *out = util_xmalloc(len / 2 + 1);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v = 0;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            free(*out);
            *out = NULL;
            return -1;
        }
        (*out)[i] = (char)v;
    }
    (*out)[len / 2] = '\0';
    *n = len / 2;
    return 0;
}

void resume_format_range(struct strbuf *b, const char *table, int idx, const struct scan_range *r)
{
    strbuf_printf(b, "range %s %d ", table, idx);
    put_hex(b, r->has_lo, r->lo, r->lolen);
    strbuf_puts(b, " ");
    put_hex(b, r->has_hi, r->hi, r->hilen);
    strbuf_puts(b, "\n");
}

void resume_format_done(struct strbuf *b, const char *table, int idx, int64_t rows)
{
    strbuf_printf(b, "done %s %d %lld\n", table, idx, (long long)rows);
}

void resume_range_free(struct resume_range *r)
{
    free(r->table);
    scan_range_free(&r->r);
    memset(r, 0, sizeof *r);
}

enum resume_line resume_parse(const char *line, struct resume_range *out)
{
    char kind[8], table[512], a[8192], b[8192];
    memset(out, 0, sizeof *out);
    int n = sscanf(line, "%7s %511s %d %8191s %8191s", kind, table, &out->idx, a, b);
    if (n == 5 && !strcmp(kind, "range")) {
        out->table = util_xstrdup(table);
        if (get_hex(a, &out->r.has_lo, &out->r.lo, &out->r.lolen) == 0 &&
            get_hex(b, &out->r.has_hi, &out->r.hi, &out->r.hilen) == 0) {
            return RESUME_RANGE;
        }
    } else if (n == 4 && !strcmp(kind, "done")) {
        char *end = NULL;
        out->rows = strtoll(a, &end, 10);
        out->done = true;
        out->table = util_xstrdup(table);
        if (!*end) {
            return RESUME_DONE;
        }
    }
    resume_range_free(out);
    return RESUME_BAD;
}

static void load_line(struct resume *rs, const char *line)
{
    struct resume_range r;
    enum resume_line k = resume_parse(line, &r);
    if (k == RESUME_RANGE) {
        rs->v = util_xrealloc(rs->v, sizeof *rs->v * (rs->n + 1));
        rs->v[rs->n++] = r;
        return;
    }
    for (size_t i = 0; k == RESUME_DONE && i < rs->n; i++) {
        if (!strcmp(rs->v[i].table, r.table) && rs->v[i].idx == r.idx) {
            rs->v[i].done = true;
            rs->v[i].rows = r.rows;
        }
    }
    resume_range_free(&r); /* a bad line (a torn last write) is ignored */
}

int resume_open(struct resume *rs, const char *path, char *err, size_t errlen)
{
    memset(rs, 0, sizeof *rs);
    FILE *in = fopen(path, "r");
    if (in) {
        char line[17000];
        while (fgets(line, sizeof line, in)) {
            line[strcspn(line, "\n")] = '\0';
            load_line(rs, line);
        }
        fclose(in);
    } else if (errno != ENOENT) {
        snprintf(err, errlen, "cannot read --resume %s: %s", path, strerror(errno));
        return -1;
    }
    if (!(rs->f = fopen(path, "a"))) {
        snprintf(err, errlen, "cannot write --resume %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void resume_close(struct resume *rs)
{
    if (rs->f) {
        fclose(rs->f);
    }
    for (size_t i = 0; i < rs->n; i++) {
        resume_range_free(&rs->v[i]);
    }
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

size_t resume_find(const struct resume *rs, const char *table, size_t *first)
{
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++) {
        if (!strcmp(rs->v[i].table, table)) {
            if (n++ == 0) {
                *first = i;
            }
        }
    }
    return n;
}

static int append_sync(struct resume *rs, const struct strbuf *b)
{
    if (fputs(b->p, rs->f) < 0 || fflush(rs->f) != 0 || fsync(fileno(rs->f)) != 0) {
        return -1;
    }
    return 0;
}

int resume_plan(struct resume *rs, const char *table, const struct scan_range *ranges, int n)
{
    struct strbuf b;
    strbuf_init(&b);
    for (int i = 0; i < n; i++) {
        resume_format_range(&b, table, i, &ranges[i]);
        rs->v = util_xrealloc(rs->v, sizeof *rs->v * (rs->n + 1));
        struct resume_range *r = &rs->v[rs->n++];
        memset(r, 0, sizeof *r);
        r->table = util_xstrdup(table);
        r->idx = i;
        scan_range_copy(&r->r, &ranges[i]);
    }
    int rc = append_sync(rs, &b);
    strbuf_free(&b);
    return rc;
}

void resume_mark(struct resume *rs, const char *table, int idx, int64_t rows)
{
    for (size_t i = 0; i < rs->n; i++) {
        if (!strcmp(rs->v[i].table, table) && rs->v[i].idx == idx) {
            rs->v[i].done = true;
            rs->v[i].rows = rows;
        }
    }
}

int resume_done(struct resume *rs, const char *table, int idx, int64_t rows)
{
    resume_mark(rs, table, idx, rows);
    struct strbuf b;
    strbuf_init(&b);
    resume_format_done(&b, table, idx, rows);
    int rc = append_sync(rs, &b);
    strbuf_free(&b);
    return rc;
}
