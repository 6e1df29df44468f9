/* config/config.c: the key table and the INI reader built on inih. */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config/conninfo.h"

#define OFF(field)  offsetof(struct config, field)
#define DIAL(field) (offsetof(struct config, dials) + offsetof(struct dials, field))

static const char *const auth_choices[] = {"trust", "scram-sha-256", NULL};
static const char *const log_choices[] = {"error", "warning", "info", "debug", NULL};
static const char *const backend_choices[] = {"old", "new", NULL};
static const char *const order_choices[] = {"lockstep", "parallel", NULL};
static const char *const wait_choices[] = {"both", "primary", NULL};
static const char *const divergence_choices[] = {"log", "serve_primary", NULL};
static const char *const tls_mode_choices[] = {"disable",   "allow",       "prefer", "require",
                                               "verify-ca", "verify-full", NULL};

/* rt: a [cutover] dial (SET at run time; reloads too). rl: SIGHUP / RELOAD applies a change
 * (else it needs a restart and a reload only warns). */
#define S(sec, name, off, def, rl, help)                             \
    {                                                                \
        sec, name, CONFIG_STR, off, def, 0, 0, NULL, false, rl, help \
    }
#define I(sec, name, off, def, lo, hi, rt, rl, help)                \
    {                                                               \
        sec, name, CONFIG_INT, off, def, lo, hi, NULL, rt, rl, help \
    }
#define E(sec, name, off, def, ch, rt, rl, help)                 \
    {                                                            \
        sec, name, CONFIG_ENUM, off, def, 0, 0, ch, rt, rl, help \
    }
#define B(sec, name, off, def, rt, rl, help)                       \
    {                                                              \
        sec, name, CONFIG_BOOL, off, def, 0, 1, NULL, rt, rl, help \
    }

const struct config_key config_keys[] = {
    S("pgdual", "listen_addr", OFF(listen_addr), "127.0.0.1", false, "address clients connect to"),
    I("pgdual", "listen_port", OFF(listen_port), "6432", 0, 65535, false, false,
      "0 picks a free port"),
    I("pgdual", "workers", OFF(workers), "2", 1, 64, false, false, "event-loop threads"),
    E("pgdual", "auth_type", OFF(auth_type), "trust", auth_choices, false, true,
      "trust | scram-sha-256 (against auth_file)"),
    S("pgdual", "auth_file", OFF(auth_file), "", true,
      "userlist.txt: \"user\" \"password-or-verifier\""),
    S("pgdual", "admin_users", OFF(admin_users), "admin", true, "users allowed on database pgdual"),
    S("pgdual", "stats_users", OFF(stats_users), "", true,
      "users allowed on database pgdual for SHOW commands only (comma-separated)"),
    B("pgdual", "admin_auth_trust", OFF(admin_auth_trust), "off", false, true,
      "on: admin and stats users log in without a password when auth_type = trust (off: always "
      "SCRAM-SHA-256 against auth_file)"),
    I("pgdual", "admin_reserved_conn", OFF(admin_reserved_conn), "3", 0, 1000, false, true,
      "console logins (admin_users, stats_users) accepted beyond max_client_conn"),
    S("pgdual", "state_file", OFF(state_file), "pgdual.state", false, "persisted dials"),
    S("pgdual", "journal_dir", OFF(journal_dir), "journal", false,
      "journal of writes the secondary missed"),
    S("pgdual", "divergence_log", OFF(divergence_log), "divergences.jsonl", false, "JSON lines"),
    I("pgdual", "metrics_port", OFF(metrics_port), "9187", 0, 65535, false, false, "0 = off"),
    S("pgdual", "metrics_addr", OFF(metrics_addr), "127.0.0.1", false,
      "address of the metrics endpoint"),
    I("pgdual", "metrics_max_conn", OFF(metrics_max_conn), "16", 1, 1024, false, false,
      "HTTP connections at once; when full, a new one closes the longest idle"),
    I("pgdual", "metrics_idle_timeout_ms", OFF(metrics_idle_timeout_ms), "10000", 1000, 3600000,
      false, false, "an HTTP connection idle this long is closed (whole seconds)"),
    I("pgdual", "max_client_conn", OFF(max_client_conn), "1000", 1, 1000000, false, true,
      "more clients get 53300 too_many_connections"),
    I("pgdual", "client_login_timeout_ms", OFF(client_login_timeout_ms), "60000", 100, 3600000,
      false, true, "a client that has not logged in by then is dropped"),
    I("pgdual", "max_message_bytes", OFF(max_message_bytes), "67108864", 8192, 1073741823, false,
      false, "largest frontend message accepted"),
    I("pgdual", "max_session_statements", OFF(max_session_statements), "10000", 16, 1000000, false,
      true, "prepared statements (and, apart, portals) one session may hold; past it 54000"),
    I("pgdual", "backend_connect_timeout_ms", OFF(backend_connect_timeout_ms), "10000", 100,
      3600000, false, true, "backend login must finish within this"),
    I("pgdual", "shutdown_timeout_ms", OFF(shutdown_timeout_ms), "30000", 0, 86400000, false, true,
      "SIGTERM waits this long for transactions to finish; a session whose client left, for its "
      "work in flight"),
    E("pgdual", "log_level", OFF(log_level), "info", log_choices, false, true, "stderr verbosity"),
    B("pgdual", "log_literals", OFF(log_literals), "off", false, true,
      "log statement literals in the divergence log"),
    S("pgdual", "read_only_functions", OFF(read_only_functions), "", false,
      "extra side-effect-free functions (comma-separated, schema.name or name)"),
    S("pgdual", "sequence_sync_databases", OFF(sequence_sync_databases), "", true,
      "databases whose sequences a primary switch syncs (comma-separated; empty = every "
      "connectable database of the old primary that the new one has too)"),
    I("pgdual", "secondary_retry_ms", OFF(secondary_retry_ms), "1000", 10, 3600000, false, true,
      "a session that lost its secondary logs in to it again at most this often"),
    B("pgdual", "reconcile_auto", OFF(reconcile_auto), "on", false, true,
      "pgdual runs a reconciliation pass itself while the secondary is lagging or diverged"),
    I("pgdual", "reconcile_interval_ms", OFF(reconcile_interval_ms), "2000", 10, 86400000, false,
      true, "pause between automatic passes that did not end in_sync"),
    S("pgdual", "reconcile_user", OFF(reconcile_user), "", true,
      "user of the automatic pass's connections when [backends] names none (empty: libpq's)"),
    S("pgdual", "verify_path", OFF(verify_path), "", true,
      "pgdual-verify for the automatic pass (empty: next to the running pgdual binary)"),
    E("pgdual", "client_tls_sslmode", OFF(client_tls_sslmode), "disable", tls_mode_choices, false,
      true, "disable | allow | prefer | require | verify-ca | verify-full (pgbouncer's meanings)"),
    S("pgdual", "client_tls_cert_file", OFF(client_tls_cert_file), "", true,
      "PEM certificate (chain) pgdual shows TLS clients"),
    S("pgdual", "client_tls_key_file", OFF(client_tls_key_file), "", true,
      "PEM private key of client_tls_cert_file"),
    S("pgdual", "client_tls_ca_file", OFF(client_tls_ca_file), "", true,
      "PEM CA certificates that verify client certificates (verify-ca, verify-full)"),
    S("pgdual", "client_tls_protocols", OFF(client_tls_protocols), "secure", true,
      "secure | all | legacy | a list of tlsv1.0 tlsv1.1 tlsv1.2 tlsv1.3"),
    S("pgdual", "client_tls_ciphers", OFF(client_tls_ciphers), "default", true,
      "default (OpenSSL's) or an OpenSSL cipher list (TLS 1.2 and below)"),
    S("backends", "old", OFF(backend_old), "host=127.0.0.1 port=5432", true,
      "libpq conninfo of old"),
    S("backends", "new", OFF(backend_new), "host=127.0.0.1 port=5433", true,
      "libpq conninfo of new"),
    E("cutover", "primary", DIAL(primary), "old", backend_choices, true, true, "source of truth"),
    I("cutover", "read_new_percent", DIAL(read_new_percent), "0", 0, 100, true, true,
      "share of routed reads served by new"),
    I("cutover", "compare_percent", DIAL(compare_percent), "100", 0, 100, true, true,
      "share of routed reads shadowed and compared"),
    E("cutover", "mirror_order", DIAL(mirror_order), "lockstep", order_choices, true, true,
      "lockstep | parallel"),
    E("cutover", "commit_wait", DIAL(commit_wait), "both", wait_choices, true, true,
      "both | primary"),
    E("cutover", "on_read_divergence", DIAL(on_read_divergence), "log", divergence_choices, true,
      true, "log | serve_primary"),
    I("cutover", "read_timeout_ms", DIAL(read_timeout_ms), "5000", 1, 86400000, true, true,
      "a read on new slower than this falls back to old"),
    I("cutover", "shadow_timeout_ms", DIAL(shadow_timeout_ms), "10000", 1, 86400000, true, true,
      "a shadow read slower than this is cancelled"),
    I("cutover", "fallback_buffer_bytes", DIAL(fallback_buffer_bytes), "1048576", 0, 1073741823,
      true, true, "secondary reply held for fallback up to this size"),
    B("cutover", "mirror", DIAL(mirror), "on", true, true, "off = ladder step 3: primary only"),
    B("cutover", "pin_writes", DIAL(pin_writes), "on", true, true,
      "lockstep: new stores the ids, times and random values old made up (off: sent verbatim)"),
    {NULL, NULL, CONFIG_STR, 0, NULL, 0, 0, NULL, false, false, NULL},
};

const struct config_key *config_find_key(const char *section, const char *name)
{
    for (const struct config_key *k = config_keys; k->name; k++) {
        if ((!section || strcasecmp(section, k->section) == 0) && strcasecmp(name, k->name) == 0) {
            return k;
        }
    }
    return NULL;
}

/* Strings may hold secrets (conninfo passwords): zeroed before they are freed. */
static void config_str_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int set_int(struct config *c, const struct config_key *k, const char *v, char *err, size_t n)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || x < k->min || x > k->max) {
        snprintf(err, n, "invalid value for %s: \"%s\" (an integer from %d to %d)", k->name, v,
                 k->min, k->max);
        return -EINVAL;
    }
    *(int *)((char *)c + k->offset) = (int)x;
    return 0;
}

static int set_enum(struct config *c, const struct config_key *k, const char *v, char *err,
                    size_t n)
{
    for (int i = 0; k->choices[i]; i++) {
        if (strcasecmp(v, k->choices[i]) == 0) {
            *(int *)((char *)c + k->offset) = i;
            return 0;
        }
    }
    char allowed[128] = "";
    for (int i = 0; k->choices[i]; i++) {
        size_t l = strlen(allowed);
        snprintf(allowed + l, sizeof(allowed) - l, "%s%s", i ? " | " : "", k->choices[i]);
    }
    snprintf(err, n, "invalid value for %s: \"%s\" (one of %s)", k->name, v, allowed);
    return -EINVAL;
}

int config_set(struct config *c, const struct config_key *k, const char *value, char *err,
               size_t errlen)
{
    switch (k->type) {
    case CONFIG_STR: {
        char *dup = strdup(value);
        if (!dup) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        char **slot = (char **)((char *)c + k->offset);
        config_str_free(*slot);
        *slot = dup;
        return 0;
    }
    case CONFIG_INT:
        return set_int(c, k, value, err, errlen);
    case CONFIG_ENUM:
        return set_enum(c, k, value, err, errlen);
    case CONFIG_BOOL: {
        bool b;
        if (parse_bool(value, &b) < 0) {
            snprintf(err, errlen, "invalid value for %s: \"%s\" (on | off)", k->name, value);
            return -EINVAL;
        }
        *(bool *)((char *)c + k->offset) = b;
        return 0;
    }
    }
    return -EINVAL;
}

void config_format(const struct config *c, const struct config_key *k, char *buf, size_t n)
{
    const char *base = (const char *)c + k->offset;
    switch (k->type) {
    case CONFIG_STR: {
        const char *s = *(char *const *)base;
        if (config_key_secret(k)) {
            (void)conninfo_mask(s, buf, n); /* a cut value is still masked */
            return;
        }
        snprintf(buf, n, "%s", s ? s : "");
        return;
    }
    case CONFIG_INT:
        snprintf(buf, n, "%d", *(const int *)base);
        return;
    case CONFIG_ENUM:
        snprintf(buf, n, "%s", k->choices[*(const int *)base]);
        return;
    case CONFIG_BOOL:
        snprintf(buf, n, "%s", *(const bool *)base ? "on" : "off");
        return;
    }
}

void config_init_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    char err[256];
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (config_set(c, k, k->default_value, err, sizeof(err)) < 0) {
            fprintf(stderr, "pgdual: bad built-in default: %s\n", err);
            abort(); /* a startup-time programming error */
        }
    }
}

void config_free(struct config *c)
{
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (k->type == CONFIG_STR) {
            char **slot = (char **)((char *)c + k->offset);
            config_str_free(*slot);
            *slot = NULL;
        }
    }
}

struct load_ctx {
    struct config *c;
    const char *path;
    char *err;
    size_t errlen;
    int line;
};

static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *l = user;
    if (l->err[0]) {
        return 0; /* keep the first error */
    }
    const struct config_key *k = config_find_key(section, name);
    if (!k) {
        snprintf(l->err, l->errlen, "%s: unknown key \"%s\" in section [%s]", l->path, name,
                 section);
        return 0;
    }
    char msg[256];
    if (config_set(l->c, k, value, msg, sizeof(msg)) < 0) {
        snprintf(l->err, l->errlen, "%s: [%s] %s", l->path, section, msg);
        return 0;
    }
    return 1;
}

/* Make relative file paths relative to the config file's directory. */
static int resolve_paths(struct config *c, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        return 0;
    }
    size_t dirlen = (size_t)(slash - path);
    char **files[] = {&c->auth_file,         &c->state_file,           &c->journal_dir,
                      &c->divergence_log,    &c->client_tls_cert_file, &c->client_tls_key_file,
                      &c->client_tls_ca_file};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *f = *files[i];
        if (!f || !f[0] || f[0] == '/') {
            continue;
        }
        size_t n = dirlen + 1 + strlen(f) + 1;
        char *abs = malloc(n);
        if (!abs) {
            return -ENOMEM;
        }
        snprintf(abs, n, "%.*s/%s", (int)dirlen, path, f);
        free(f);
        *files[i] = abs;
    }
    return 0;
}

/* The number of the first line longer than CONFIG_LINE_MAX bytes, or 0. inih would cut such a line
 * and read its tail as a line of its own, reporting a syntax error on a line that has none. */
static int first_long_line(const char *text, size_t len)
{
    int line = 1;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') {
            size_t n = i - start;
            if (n > 0 && text[i - 1] == '\r') {
                n--;
            }
            if (n > CONFIG_LINE_MAX) {
                return line;
            }
            line++;
            start = i + 1;
        }
    }
    return 0;
}

int config_parse_text(struct config *c, const char *text, size_t len, const char *name, char *err,
                      size_t errlen)
{
    struct load_ctx l = {c, name, err, errlen, 0};
    err[0] = '\0';
    if (len > CONFIG_MAX_BYTES || memchr(text, '\0', len) != NULL) {
        snprintf(err, errlen, "%s: not a config file (larger than %d bytes or binary)", name,
                 CONFIG_MAX_BYTES);
        return -EINVAL;
    }
    int long_line = first_long_line(text, len);
    if (long_line > 0) {
        snprintf(err, errlen,
                 "%s:%d: line longer than %d bytes (the INI parser's limit): shorten it (a long "
                 "conninfo can name a service in pg_service.conf, or set PGSSLROOTCERT etc.)",
                 name, long_line, CONFIG_LINE_MAX);
        return -EINVAL;
    }
    char *copy = malloc(len + 1); /* ini_parse_string wants a NUL-terminated text */
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    int rc = ini_parse_string(copy, on_ini_pair, &l);
    free(copy);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (rc > 0) {
        if (!err[0]) {
            snprintf(err, errlen, "%s:%d: syntax error", name, rc);
        } else {
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, " (line %d)", rc);
        }
        return -EINVAL;
    }
    if (c->auth_type == AUTH_SCRAM && !c->auth_file[0]) {
        snprintf(err, errlen, "%s: auth_type = scram-sha-256 needs auth_file", name);
        return -EINVAL;
    }
    if (c->client_tls_sslmode != TLS_DISABLE &&
        (!c->client_tls_cert_file[0] || !c->client_tls_key_file[0])) {
        snprintf(err, errlen,
                 "%s: client_tls_sslmode = %s needs client_tls_cert_file and client_tls_key_file",
                 name, tls_mode_choices[c->client_tls_sslmode]);
        return -EINVAL;
    }
    if (c->client_tls_sslmode >= TLS_VERIFY_CA && !c->client_tls_ca_file[0]) {
        snprintf(err, errlen, "%s: client_tls_sslmode = %s needs client_tls_ca_file", name,
                 tls_mode_choices[c->client_tls_sslmode]);
        return -EINVAL;
    }
    return 0;
}

/* The whole file, NUL-terminated, in *out (owned by the caller); its length in *len. */
static int read_config_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the config file: %s", path, strerror(errno));
        return -EIO;
    }
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_MAX_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > CONFIG_MAX_BYTES) {
        free(buf);
        snprintf(err, errlen, "%s: cannot read the config file: %s", path,
                 !buf  ? "out of memory"
                 : bad ? "read error"
                       : "larger than 1 MiB");
        return -EIO;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rc = read_config_file(path, &text, &len, err, errlen);
    if (rc < 0) {
        return rc;
    }
    rc = config_parse_text(c, text, len, path, err, errlen);
    free(text);
    if (rc < 0) {
        return rc;
    }
    if (resolve_paths(c, path) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* Is user in the comma- or space-separated list? */
static bool config_list_has(const char *p, const char *user)
{
    size_t ulen = strlen(user);
    while (p && *p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ", ");
        if (n == ulen && n > 0 && strncmp(p, user, n) == 0) {
            return true;
        }
        p += n;
    }
    return false;
}

bool config_is_admin(const struct config *c, const char *user)
{
    return config_list_has(c->admin_users, user);
}

bool config_needs_auth_file(const struct config *c)
{
    return c->auth_type == AUTH_SCRAM || (!c->admin_auth_trust && c->auth_file && c->auth_file[0]);
}

bool config_is_stats(const struct config *c, const char *user)
{
    return config_list_has(c->stats_users, user);
}

bool config_key_secret(const struct config_key *k)
{
    return k->type == CONFIG_STR && strcmp(k->section, "backends") == 0;
}

bool config_key_equal(const struct config *a, const struct config *b, const struct config_key *k)
{
    const char *pa = (const char *)a + k->offset;
    const char *pb = (const char *)b + k->offset;
    switch (k->type) {
    case CONFIG_STR: {
        const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
        return strcmp(sa ? sa : "", sb ? sb : "") == 0;
    }
    case CONFIG_INT:
    case CONFIG_ENUM:
        return *(const int *)pa == *(const int *)pb;
    case CONFIG_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    }
    return false;
}

int config_copy_key(struct config *dst, const struct config *src, const struct config_key *k)
{
    const char *ps = (const char *)src + k->offset;
    char *pd = (char *)dst + k->offset;
    switch (k->type) {
    case CONFIG_STR: {
        const char *s = *(char *const *)ps;
        char *dup = strdup(s ? s : "");
        if (!dup) {
            return -ENOMEM;
        }
        config_str_free(*(char **)pd);
        *(char **)pd = dup;
        return 0;
    }
    case CONFIG_INT:
    case CONFIG_ENUM:
        *(int *)pd = *(const int *)ps;
        return 0;
    case CONFIG_BOOL:
        *(bool *)pd = *(const bool *)ps;
        return 0;
    }
    return -EINVAL;
}

int config_copy(struct config *dst, const struct config *src)
{
    memset(dst, 0, sizeof(*dst));
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (config_copy_key(dst, src, k) < 0) {
            config_free(dst);
            return -ENOMEM;
        }
    }
    return 0;
}
