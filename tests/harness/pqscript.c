/* tests/harness/pqscript.c: a libpq client for shell tests that runs one libpq call per line of a
 * script and prints what each returned, so a test can drive the extended protocol (and check
 * PQntuples / PQcmdTuples) without writing C.
 *
 *     pqscript CONNINFO < SCRIPT
 *
 * Each script line is fields separated by TABs (empty lines and lines starting with '#' are
 * skipped):
 *     Q  sql                  PQexec (simple Query)
 *     X  sql [param]...       PQexecParams, text parameters (unnamed statement and portal)
 *     P  name sql             PQprepare
 *     E  name [param]...      PQexecPrepared, text parameters
 *     D  name                 PQdescribePrepared
 * A parameter written \N is NULL. For each line one output line, fields separated by TABs:
 *     line-number  status  command-status-or-SQLSTATE  ntuples  cmdtuples  nfields  nparams  value
 * status is PQresStatus's name without "PGRES_"; on an error the third field is the SQLSTATE;
 * value is row 0, column 0 (\N for NULL; empty without rows). Exit 0 when every line ran (errors
 * included), 1 when the connection failed or broke. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <libpq-fe.h>

#define MAX_FIELDS 64

/* Splits line at TABs in place; returns the number of fields (at most MAX_FIELDS). */
static int split_tabs(char *line, char **f)
{
    int n = 0;
    char *p = line;
    while (n < MAX_FIELDS) {
        f[n++] = p;
        p = strchr(p, '\t');
        if (!p) {
            break;
        }
        *p++ = '\0';
    }
    return n;
}

/* Turns fields written \N into NULL parameters. */
static void null_params(char **params, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(params[i], "\\N") == 0) {
            params[i] = NULL;
        }
    }
}

static PGresult *run_line(PGconn *c, char **f, int n)
{
    const char *verb = f[0];
    if (strcmp(verb, "Q") == 0 && n == 2) {
        return PQexec(c, f[1]);
    }
    if (strcmp(verb, "X") == 0 && n >= 2) {
        null_params(f + 2, n - 2);
        return PQexecParams(c, f[1], n - 2, NULL, (const char *const *)(f + 2), NULL, NULL, 0);
    }
    if (strcmp(verb, "P") == 0 && n == 3) {
        return PQprepare(c, f[1], f[2], 0, NULL);
    }
    if (strcmp(verb, "E") == 0 && n >= 2) {
        null_params(f + 2, n - 2);
        return PQexecPrepared(c, f[1], n - 2, (const char *const *)(f + 2), NULL, NULL, 0);
    }
    if (strcmp(verb, "D") == 0 && n == 2) {
        return PQdescribePrepared(c, f[1]);
    }
    return NULL;
}

static void print_result(long lineno, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    const char *name = PQresStatus(st);
    if (strncmp(name, "PGRES_", 6) == 0) {
        name += 6;
    }
    const char *what = PQcmdStatus(r);
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
        what = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    }
    const char *value = "";
    if (PQntuples(r) > 0 && PQnfields(r) > 0) {
        value = PQgetisnull(r, 0, 0) ? "\\N" : PQgetvalue(r, 0, 0);
    }
    printf("%ld\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", lineno, name, what ? what : "", PQntuples(r),
           PQcmdTuples(r), PQnfields(r), PQnparams(r), value);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pqscript CONNINFO < SCRIPT\n");
        return 2;
    }
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pqscript: %s", PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        char *f[MAX_FIELDS];
        int n = split_tabs(line, f);
        PGresult *r = run_line(c, f, n);
        if (!r) {
            fprintf(stderr, "pqscript: line %ld: bad line or no result: %s", lineno,
                    PQerrorMessage(c));
            rc = 1;
            break;
        }
        print_result(lineno, r);
        PQclear(r);
        fflush(stdout);
        if (PQstatus(c) != CONNECTION_OK) {
            fprintf(stderr, "pqscript: line %ld: connection lost: %s", lineno, PQerrorMessage(c));
            rc = 1;
            break;
        }
    }
    free(line);
    PQfinish(c);
    return rc;
}
