/* tools/verify/resume.h: --resume FILE, the backfill's progress: the ranges planned per table
 * and each one finished (one line each, fsync'd), so a second run skips finished ranges. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/verify/scan.h"
#include "tools/verify/util.h"

struct strbuf;

/* One planned range of a table. */
struct resume_range {
    char *table; /* schema.name */
    int idx;     /* position in the table's plan */
    struct scan_range r;
    bool done;
    int64_t rows; /* rows copied, when done */
};

struct resume {
    FILE *f; /* opened for appending */
    struct resume_range *v;
    size_t n;
};

/* The line kinds of the file:
 *   "range <table> <idx> <lo> <hi>"   lo, hi: hex of the packed key, "-" when open
 *   "done <table> <idx> <rows>" */
enum resume_line { RESUME_BAD = -1, RESUME_RANGE = 0, RESUME_DONE = 1 };

/* Appends one line (with '\n') for a planned range / a finished one. */
void resume_format_range(struct strbuf *b, const char *table, int idx, const struct scan_range *r);
void resume_format_done(struct strbuf *b, const char *table, int idx, int64_t rows);
/* Parses one line (without '\n') into out (allocated; free with resume_range_free). */
enum resume_line resume_parse(const char *line, struct resume_range *out);
void resume_range_free(struct resume_range *r);

/* Loads path (missing = empty) and opens it for appending. 0 or -1 (err). */
int resume_open(struct resume *rs, const char *path, char *err, size_t errlen) WUR;
void resume_close(struct resume *rs);
/* The planned ranges of table, in plan order: their count and the index of the first in rs->v. */
size_t resume_find(const struct resume *rs, const char *table, size_t *first);
/* Records a table's plan / a finished range (written and fsync'd before returning). 0 or -1. */
int resume_plan(struct resume *rs, const char *table, const struct scan_range *ranges, int n) WUR;
int resume_done(struct resume *rs, const char *table, int idx, int64_t rows) WUR;
/* Marks a range finished in memory only (a range skipped because the secondary has rows there:
 * the passes repair it, and this run does not try to copy it again). */
void resume_mark(struct resume *rs, const char *table, int idx, int64_t rows);
