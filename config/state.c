/* config/state.c: the state file's format, parser and atomic writer (see state.h). */
#include "config/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <xxhash.h>

#include "config/config.h"

#define STATE_HEADER \
    "# pgdual state file: written by pgdual; do not edit (the checksum guards it)\n"
#define CHECKSUM_KEY   "checksum = "
#define CHECKSUM_HEX   16
#define STATE_LINE_MAX 256

uint64_t state_checksum(const void *p, size_t n)
{
    return (uint64_t)XXH64(p, n, 0);
}

/* The dials' keys are the [cutover] rows of the config table marked runtime. */
static bool is_dial_key(const struct config_key *k)
{
    return k->runtime && strcmp(k->section, "cutover") == 0;
}

int state_format(const struct dials *d, const struct state_secondary *sec, char *buf, size_t cap)
{
    struct config view;
    memset(&view, 0, sizeof(view));
    view.dials = *d;
    size_t len = 0;
    int n = snprintf(buf, cap, "%sversion = %d\n", STATE_HEADER, STATE_VERSION);
    if (n < 0 || (size_t)n >= cap) {
        return -ENOSPC;
    }
    len = (size_t)n;
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (!is_dial_key(k)) {
            continue;
        }
        char val[64];
        config_format(&view, k, val, sizeof(val));
        n = snprintf(buf + len, cap - len, "%s = %s\n", k->name, val);
        if (n < 0 || (size_t)n >= cap - len) {
            return -ENOSPC;
        }
        len += (size_t)n;
    }
    if (sec && sec->name[0]) {
        n = snprintf(buf + len, cap - len, "secondary_state = %s\nsecondary_since = %lld\n",
                     sec->name, (long long)sec->since_ms);
        if (n < 0 || (size_t)n >= cap - len) {
            return -ENOSPC;
        }
        len += (size_t)n;
        if (sec->reconcile[0] && !strchr(sec->reconcile, '\n')) {
            n = snprintf(buf + len, cap - len, "secondary_reconcile = %s\n", sec->reconcile);
            if (n < 0 || (size_t)n >= cap - len) {
                return -ENOSPC;
            }
            len += (size_t)n;
        }
        if (sec->pass > 0) {
            n = snprintf(buf + len, cap - len, "secondary_pass = %llu\n",
                         (unsigned long long)sec->pass);
            if (n < 0 || (size_t)n >= cap - len) {
                return -ENOSPC;
            }
            len += (size_t)n;
        }
    }
    n = snprintf(buf + len, cap - len, CHECKSUM_KEY "%016llx\n",
                 (unsigned long long)state_checksum(buf, len));
    if (n < 0 || (size_t)n >= cap - len) {
        return -ENOSPC;
    }
    return (int)(len + (size_t)n);
}

/* The last line must be "checksum = <16 hex>" and match the bytes before it. On success
 * *body_len is the length of those bytes. */
static int check_seal(const char *text, size_t len, size_t *body_len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "empty file");
        return -EINVAL;
    }
    if (text[len - 1] != '\n') {
        snprintf(err, errlen, "truncated: the last line has no newline (no end marker)");
        return -EINVAL;
    }
    size_t start = len - 1;
    while (start > 0 && text[start - 1] != '\n') {
        start--;
    }
    size_t line_len = len - 1 - start;
    const char *line = text + start;
    size_t klen = strlen(CHECKSUM_KEY);
    if (line_len < klen || strncmp(line, CHECKSUM_KEY, klen) != 0) {
        snprintf(err, errlen,
                 "truncated: the final \"checksum = ...\" line (end marker) is missing");
        return -EINVAL;
    }
    char hex[CHECKSUM_HEX + 1];
    if (line_len != klen + CHECKSUM_HEX) {
        snprintf(err, errlen, "malformed checksum line (want %d hex digits)", CHECKSUM_HEX);
        return -EINVAL;
    }
    memcpy(hex, line + klen, CHECKSUM_HEX);
    hex[CHECKSUM_HEX] = '\0';
    char *end;
    errno = 0;
    unsigned long long want = strtoull(hex, &end, 16);
    if (errno || *end != '\0' || hex[0] == '-' || hex[0] == '+' || hex[0] == ' ') {
        snprintf(err, errlen, "malformed checksum line (want %d hex digits)", CHECKSUM_HEX);
        return -EINVAL;
    }
    uint64_t got = state_checksum(text, start);
    if (got != (uint64_t)want) {
        snprintf(err, errlen, "bad checksum: the file says %s, its contents hash to %016llx", hex,
                 (unsigned long long)got);
        return -EINVAL;
    }
    *body_len = start;
    return 0;
}

/* Split "key = value" (spaces around '=' optional) in place. */
static int split_pair(char *line, char **key, char **value)
{
    char *eq = strchr(line, '=');
    if (!eq) {
        return -EINVAL;
    }
    char *k_end = eq;
    while (k_end > line && k_end[-1] == ' ') {
        k_end--;
    }
    *k_end = '\0';
    char *v = eq + 1;
    while (*v == ' ') {
        v++;
    }
    size_t vl = strlen(v);
    while (vl > 0 && v[vl - 1] == ' ') {
        v[--vl] = '\0';
    }
    *key = line;
    *value = v;
    return line[0] && v[0] ? 0 : -EINVAL;
}

struct parse_ctx {
    struct config scratch; /* only .dials is used */
    bool seen[64];         /* index into config_keys: each dial once */
    bool version_seen;
    struct state_secondary sec;
    bool sec_name_seen, sec_since_seen, sec_reconcile_seen, sec_pass_seen;
};

/* secondary_state / secondary_since / secondary_reconcile / secondary_pass. 1 = handled, 0 = not
 * one of them, < 0 = bad. */
static int parse_secondary(struct parse_ctx *p, const char *key, const char *value, int lineno,
                           char *err, size_t errlen)
{
    if (strcmp(key, "secondary_reconcile") == 0) {
        if (p->sec_reconcile_seen || strlen(value) >= sizeof(p->sec.reconcile)) {
            snprintf(err, errlen, "line %d: bad or repeated secondary_reconcile", lineno);
            return -EINVAL;
        }
        p->sec_reconcile_seen = true;
        snprintf(p->sec.reconcile, sizeof(p->sec.reconcile), "%s", value);
        return 1;
    }
    if (strcmp(key, "secondary_pass") == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (p->sec_pass_seen || errno || *end != '\0' || value[0] == '-' || !value[0]) {
            snprintf(err, errlen, "line %d: bad or repeated secondary_pass", lineno);
            return -EINVAL;
        }
        p->sec_pass_seen = true;
        p->sec.pass = v;
        return 1;
    }
    bool is_name = strcmp(key, "secondary_state") == 0;
    if (!is_name && strcmp(key, "secondary_since") != 0) {
        return 0;
    }
    bool *seen = is_name ? &p->sec_name_seen : &p->sec_since_seen;
    if (*seen) {
        snprintf(err, errlen, "line %d: key \"%s\" given twice", lineno, key);
        return -EINVAL;
    }
    *seen = true;
    if (is_name) {
        size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyz_");
        if (n == 0 || value[n] != '\0' || n >= sizeof(p->sec.name)) {
            snprintf(err, errlen, "line %d: bad secondary_state \"%s\"", lineno, value);
            return -EINVAL;
        }
        memcpy(p->sec.name, value, n + 1);
        return 1;
    }
    char *end;
    errno = 0;
    long long ms = strtoll(value, &end, 10);
    if (errno || *end != '\0' || ms < 0) {
        snprintf(err, errlen, "line %d: bad secondary_since \"%s\"", lineno, value);
        return -EINVAL;
    }
    p->sec.since_ms = ms;
    return 1;
}

static int parse_line(struct parse_ctx *p, char *line, int lineno, char *err, size_t errlen)
{
    if (line[0] == '#') {
        return 0;
    }
    char *key, *value;
    if (split_pair(line, &key, &value) < 0) {
        snprintf(err, errlen, "line %d: expected \"key = value\"", lineno);
        return -EINVAL;
    }
    if (strcmp(key, "version") == 0) {
        if (strcmp(value, "1") != 0) {
            snprintf(err, errlen, "line %d: unsupported version \"%s\" (this pgdual reads %d)",
                     lineno, value, STATE_VERSION);
            return -EINVAL;
        }
        p->version_seen = true;
        return 0;
    }
    int sec_rc = parse_secondary(p, key, value, lineno, err, errlen);
    if (sec_rc != 0) {
        return sec_rc < 0 ? sec_rc : 0;
    }
    const struct config_key *k = config_find_key("cutover", key);
    if (!k || !is_dial_key(k)) {
        snprintf(err, errlen, "line %d: unknown key \"%s\"", lineno, key);
        return -EINVAL;
    }
    size_t idx = (size_t)(k - config_keys);
    if (idx >= sizeof(p->seen) || p->seen[idx]) {
        snprintf(err, errlen, "line %d: key \"%s\" given twice", lineno, key);
        return -EINVAL;
    }
    p->seen[idx] = true;
    char msg[200];
    if (config_set(&p->scratch, k, value, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "line %d: %s", lineno, msg);
        return -EINVAL;
    }
    return 0;
}

int state_parse(const char *text, size_t len, struct dials *d, struct state_secondary *sec,
                char *err, size_t errlen)
{
    size_t body_len = 0;
    if (memchr(text, '\0', len)) {
        snprintf(err, errlen, "contains a NUL byte (not a state file)");
        return -EINVAL;
    }
    int rc = check_seal(text, len, &body_len, err, errlen);
    if (rc < 0) {
        return rc;
    }
    struct parse_ctx p;
    memset(&p, 0, sizeof(p));
    p.scratch.dials = *d;
    int lineno = 0;
    for (size_t off = 0; off < body_len;) {
        const char *nl = memchr(text + off, '\n', body_len - off);
        size_t n = (size_t)(nl - (text + off)); /* the body ends with '\n': nl is never NULL */
        lineno++;
        if (n >= STATE_LINE_MAX) {
            snprintf(err, errlen, "line %d: longer than %d bytes", lineno, STATE_LINE_MAX);
            return -EINVAL;
        }
        char line[STATE_LINE_MAX];
        memcpy(line, text + off, n);
        line[n] = '\0';
        rc = parse_line(&p, line, lineno, err, errlen);
        if (rc < 0) {
            return rc;
        }
        off += n + 1;
    }
    if (!p.version_seen) {
        snprintf(err, errlen, "no \"version = %d\" line", STATE_VERSION);
        return -EINVAL;
    }
    *d = p.scratch.dials;
    if (sec) {
        *sec = p.sec;
    }
    return 0;
}

int state_load(const char *path, struct dials *d, struct state_secondary *sec, char *err,
               size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "state file %s: cannot open: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(STATE_MAX_BYTES + 1);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "state file %s: out of memory", path);
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, STATE_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "state file %s: cannot read: %s", path, strerror(-rc));
            break;
        }
        len += (size_t)n;
        if (n == 0 || len > STATE_MAX_BYTES) {
            break;
        }
    }
    close(fd);
    if (rc == 0 && len > STATE_MAX_BYTES) {
        snprintf(err, errlen, "state file %s: larger than %d bytes (not a state file)", path,
                 STATE_MAX_BYTES);
        rc = -EINVAL;
    }
    if (rc == 0) {
        char msg[256];
        rc = state_parse(buf, len, d, sec, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "state file %s is corrupt: %s", path, msg);
        }
    }
    free(buf);
    return rc < 0 ? rc : 1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync the directory holding path, so the rename itself is durable. */
static int sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else if ((size_t)(slash - path) < sizeof(dir)) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    } else {
        return -ENAMETOOLONG;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int state_save(const char *path, const struct dials *d, const struct state_secondary *sec,
               char *err, size_t errlen)
{
    char text[4096];
    int len = state_format(d, sec, text, sizeof(text));
    char tmp[4096];
    if (len < 0 || (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        snprintf(err, errlen, "state file %s: path or contents too long", path);
        return -ENAMETOOLONG;
    }
    const char *step = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0) {
        step = "write";
        rc = write_all(fd, text, (size_t)len);
    }
    if (rc == 0) {
        step = "fsync";
        rc = fsync(fd) < 0 ? -errno : 0;
    }
    if (fd >= 0 && close(fd) < 0 && rc == 0) {
        step = "close";
        rc = -errno;
    }
    if (rc == 0) {
        step = "rename";
        rc = rename(tmp, path) < 0 ? -errno : 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "state file %s: cannot %s %s: %s", path, step, tmp, strerror(-rc));
        if (fd >= 0) {
            unlink(tmp);
        }
        return rc;
    }
    rc = sync_dir_of(path);
    if (rc < 0) {
        snprintf(err, errlen, "state file %s: cannot fsync its directory: %s", path, strerror(-rc));
        return rc;
    }
    return 0;
}
