/* tools/verify/report.h: human summary on stdout, JSON file, watch-mode change lines, stats. */
#pragma once
#include <stdio.h>

#include "tools/verify/util.h"

struct options;
struct verify_pass;

/* Prints schema differences (before data is compared); each line starts with prefix. */
void report_schema(FILE *f, const struct verify_pass *vp, const char *prefix);
/* Per table: rows compared, ranges, result, time; then the verdict line. */
void report_summary(FILE *f, const struct options *o, const struct verify_pass *vp,
                    const char *prefix);
/* Writes every difference to path; vp may be NULL when error is set. */
int report_json(const char *path, const struct options *o, const struct verify_pass *vp,
                const char *error) WUR;
/* One line per difference, sorted (watch mode compares successive passes). */
char **report_lines(const struct options *o, const struct verify_pass *vp, int *n);
void report_lines_free(char **lines, int n);
/* Bytes received per connection (--stats). */
void report_stats(FILE *f, const struct verify_pass *vp);
