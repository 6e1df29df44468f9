/* config/userlist.c: parser for the auth_file (pgbouncer's userlist.txt: `"user" "password"`). */
#include "config/userlist.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERLIST_LINE_MAX 4096                /* longest line accepted, in bytes */
#define USERLIST_FILE_MAX (16u * 1024 * 1024) /* largest auth_file accepted */

/* Error codes: negative errno values (libuv style). -EINVAL: a malformed line (err names
 * file:line); -ENOMEM; -EFBIG: file too large; other -errno: the file could not be read. */

/* What one line parsed into; the strings are the caller's scratch buffers. */
struct userlist_line {
    char *user;
    char *password;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static size_t skip_blank(const char *line, size_t len, size_t pos)
{
    while (pos < len && is_blank(line[pos])) {
        pos++;
    }
    return pos;
}

/* One "quoted" field at line[*pos]; "" inside is a literal quote. out holds >= len + 1 bytes. */
static int read_field(const char *line, size_t len, size_t *pos, char *out, const char **why)
{
    size_t i = *pos, o = 0;
    if (i >= len || line[i] != '"') {
        *why = "expected a double-quoted string";
        return -EINVAL;
    }
    for (i++; i < len; i++) {
        if (line[i] != '"') {
            out[o++] = line[i];
        } else if (i + 1 < len && line[i + 1] == '"') {
            out[o++] = '"';
            i++;
        } else {
            out[o] = '\0';
            *pos = i + 1;
            return 0;
        }
    }
    *why = "unterminated double-quoted string";
    return -EINVAL;
}

/* Parses one line. Returns 1 for an entry, 0 for a blank or comment line, -EINVAL (with *why). */
static int parse_line(const char *line, size_t len, struct userlist_line *out, const char **why)
{
    size_t pos = skip_blank(line, len, 0);
    if (pos == len || line[pos] == ';' || line[pos] == '#') {
        return 0;
    }
    if (read_field(line, len, &pos, out->user, why) < 0) {
        return -EINVAL;
    }
    if (out->user[0] == '\0') {
        *why = "empty user name";
        return -EINVAL;
    }
    if (pos >= len || !is_blank(line[pos])) {
        *why = "expected white space and a double-quoted password after the user name";
        return -EINVAL;
    }
    pos = skip_blank(line, len, pos);
    if (read_field(line, len, &pos, out->password, why) < 0) {
        return -EINVAL;
    }
    if (skip_blank(line, len, pos) != len) {
        *why = "unexpected text after the password";
        return -EINVAL;
    }
    return 1;
}

static int append_entry(struct userlist *ul, size_t *cap, const struct userlist_line *l)
{
    if (ul->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct userlist_entry *e = realloc(ul->entries, ncap * sizeof *e);
        if (e == NULL) {
            return -ENOMEM;
        }
        ul->entries = e;
        *cap = ncap;
    }
    char *user = strdup(l->user);
    char *password = strdup(l->password);
    if (user == NULL || password == NULL) {
        free(user);
        if (password) {
            explicit_bzero(password, strlen(password));
        }
        free(password);
        return -ENOMEM;
    }
    ul->entries[ul->count].user = user;
    ul->entries[ul->count].password = password;
    ul->count++;
    return 0;
}

static void set_err(char *err, size_t errlen, const char *name, size_t lineno, const char *why)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s:%zu: %s", name ? name : "(userlist)", lineno, why);
    }
}

/* Parses and appends one line; *why explains a -EINVAL. */
static int add_line(struct userlist *ul, size_t *cap, const char *line, size_t len,
                    struct userlist_line *scratch, const char **why)
{
    if (len > USERLIST_LINE_MAX) {
        *why = "line too long";
        return -EINVAL;
    }
    if (memchr(line, '\0', len) != NULL) {
        *why = "NUL byte in line";
        return -EINVAL;
    }
    int rc = parse_line(line, len, scratch, why);
    if (rc <= 0) {
        return rc;
    }
    if (userlist_find(ul, scratch->user) != NULL) {
        *why = "duplicate user name";
        return -EINVAL;
    }
    rc = append_entry(ul, cap, scratch);
    if (rc < 0) {
        *why = "out of memory";
    }
    return rc;
}

int userlist_parse(const char *text, size_t len, const char *name, struct userlist **out, char *err,
                   size_t errlen)
{
    char ubuf[USERLIST_LINE_MAX + 1], pbuf[USERLIST_LINE_MAX + 1];
    struct userlist_line scratch = {ubuf, pbuf};
    size_t cap = 0, lineno = 0, pos = 0;
    const char *why = NULL;
    int rc = 0;
    struct userlist *ul = calloc(1, sizeof *ul);
    if (ul == NULL) {
        set_err(err, errlen, name, 0, "out of memory");
        return -ENOMEM;
    }
    while (pos < len && rc == 0) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        rc = add_line(ul, &cap, text + pos, llen, &scratch, &why);
        pos += llen + (nl ? 1 : 0);
    }
    explicit_bzero(pbuf, sizeof pbuf); /* passwords do not linger on the stack */
    if (rc < 0) {
        set_err(err, errlen, name, lineno, why);
        userlist_free(ul);
        return rc;
    }
    *out = ul;
    return 0;
}

/* Reads the whole file (at most USERLIST_FILE_MAX bytes) into a fresh buffer. */
static int read_file(FILE *f, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b != NULL) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) {
            break;
        }
        /* Not realloc: the old block, holding passwords, is zeroed before it is freed. */
        char *nb = cap < USERLIST_FILE_MAX ? malloc(cap * 2) : NULL;
        if (nb != NULL) {
            memcpy(nb, b, n);
        }
        explicit_bzero(b, n);
        free(b);
        if (nb == NULL) {
            return cap < USERLIST_FILE_MAX ? -ENOMEM : -EFBIG;
        }
        b = nb;
        cap *= 2;
    }
    if (b == NULL) {
        return -ENOMEM;
    }
    if (ferror(f)) {
        explicit_bzero(b, n);
        free(b);
        return -EIO;
    }
    *buf = b;
    *len = n;
    return 0;
}

int userlist_load(const char *path, struct userlist **out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(e));
        }
        return -e;
    }
    int rc = read_file(f, &buf, &len);
    fclose(f);
    if (rc < 0) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        }
        return rc;
    }
    rc = userlist_parse(buf, len, path, out, err, errlen);
    explicit_bzero(buf, len); /* the file's passwords */
    free(buf);
    return rc;
}

const struct userlist_entry *userlist_find(const struct userlist *ul, const char *user)
{
    if (ul == NULL || user == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < ul->count; i++) {
        if (strcmp(ul->entries[i].user, user) == 0) {
            return &ul->entries[i];
        }
    }
    return NULL;
}

void userlist_free(struct userlist *ul)
{
    if (ul == NULL) {
        return;
    }
    for (size_t i = 0; i < ul->count; i++) {
        free(ul->entries[i].user);
        char *pw = ul->entries[i].password;
        explicit_bzero(pw, strlen(pw)); /* a freed secret is zeroed */
        free(pw);
    }
    free(ul->entries);
    free(ul);
}
