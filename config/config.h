/* config/config.h: the pgdual.ini file: one table of keys (name, type, offset, default, bounds,
 * runtime flag) read by the parser, SHOW CONFIG, SET and the README's reference alike. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "config/dials.h"

enum auth_type { AUTH_TRUST, AUTH_SCRAM };
enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
/* client_tls_sslmode, pgbouncer's values in its order: the stricter, the larger. */
enum tls_mode { TLS_DISABLE, TLS_ALLOW, TLS_PREFER, TLS_REQUIRE, TLS_VERIFY_CA, TLS_VERIFY_FULL };

struct config {
    /* [pgdual] */
    char *listen_addr;
    int listen_port; /* 0 = pick a free port (printed on stderr as "listening on ...") */
    int workers;
    int auth_type; /* enum auth_type */
    char *auth_file;
    char *admin_users;       /* comma-separated */
    char *stats_users;       /* comma-separated: may log into the console and only SHOW */
    bool admin_auth_trust;   /* the console logs in without a password (off: always SCRAM) */
    int admin_reserved_conn; /* console logins accepted beyond max_client_conn */
    char *state_file;
    char *journal_dir;
    char *divergence_log;
    int metrics_port;
    char *metrics_addr;          /* the metrics endpoint's own address */
    int metrics_max_conn;        /* HTTP connections at once; a new one evicts the oldest idle */
    int metrics_idle_timeout_ms; /* an HTTP connection idle this long is closed */
    int max_client_conn;
    int client_login_timeout_ms;
    int max_message_bytes;
    int max_session_statements; /* per session: named prepared statements, and apart portals */
    int backend_connect_timeout_ms;
    int shutdown_timeout_ms;
    int log_level; /* enum log_level */
    bool log_literals;
    char *read_only_functions; /* comma-separated function names known side-effect free */
    /* comma-separated databases whose sequences a primary switch syncs; "" = all of them */
    char *sequence_sync_databases;
    int secondary_retry_ms; /* a session without its secondary logs in again at most this often */
    bool reconcile_auto;    /* pgdual begins a reconciliation pass itself (lagging / diverged) */
    int reconcile_interval_ms; /* pause between automatic passes that did not end in_sync */
    char *reconcile_user;      /* the pass's user when [backends] names none; "" = libpq's */
    char *verify_path;         /* pgdual-verify; "" = next to the running pgdual */
    int client_tls_sslmode;    /* enum tls_mode */
    char *client_tls_cert_file;
    char *client_tls_key_file;
    char *client_tls_ca_file;   /* verify-ca / verify-full: CA that signs client certificates */
    char *client_tls_protocols; /* pgbouncer syntax: secure | all | legacy | tlsv1.2,tlsv1.3 ... */
    char *client_tls_ciphers;   /* "default" (OpenSSL's) or an OpenSSL cipher list */
    /* [backends] */
    char *backend_old;
    char *backend_new;
    /* [cutover] */
    struct dials dials;
};

enum config_type { CONFIG_STR, CONFIG_INT, CONFIG_ENUM, CONFIG_BOOL };

struct config_key {
    const char *section;
    const char *name;
    enum config_type type;
    size_t offset;              /* into struct config */
    const char *default_value;  /* as written in the file */
    int min, max;               /* CONFIG_INT bounds */
    const char *const *choices; /* CONFIG_ENUM names, NULL-terminated; index = stored value */
    bool runtime;               /* may change with the admin console's SET (a [cutover] dial) */
    bool reload;                /* a SIGHUP / RELOAD applies a change; else it needs a restart */
    const char *help;
};

/* The table, NULL-name terminated. */
extern const struct config_key config_keys[];

/* Defaults for every key. */
void config_init_defaults(struct config *c);
/* Read path over the defaults. Unknown sections/keys and bad values are errors: a message
 * naming the file, line and key goes to err. Relative file paths are taken relative to the
 * config file's directory. */
#define CONFIG_MAX_BYTES (1024 * 1024) /* a config file is a few KiB; refuse anything big */
/* Longest line accepted: inih's INI_MAX_LINE (200 in Debian's build) less the newline and NUL. */
#define CONFIG_LINE_MAX  198

/* Parse a whole config text of len bytes into c (keys it names are set, others keep their
 * value); `name` is used in error messages. Relative paths are left as written. */
int config_parse_text(struct config *c, const char *text, size_t len, const char *name, char *err,
                      size_t errlen) __attribute__((warn_unused_result));
int config_load(struct config *c, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Frees the strings, zeroed first (they may hold secrets). */
void config_free(struct config *c);

const struct config_key *config_find_key(const char *section, const char *name);
/* Set one key from its text form (validated). section may be NULL to search every section. */
int config_set(struct config *c, const struct config_key *k, const char *value, char *err,
               size_t errlen) __attribute__((warn_unused_result));
/* The value of k in c as text, for display: a key that may hold a secret (config_key_secret)
 * comes out masked (conninfo_mask). */
void config_format(const struct config *c, const struct config_key *k, char *buf, size_t n);
/* True if k has the same value in a and b. */
bool config_key_equal(const struct config *a, const struct config *b, const struct config_key *k);
/* Set k in dst to its value in src (strings are copied). */
int config_copy_key(struct config *dst, const struct config *src, const struct config_key *k)
    __attribute__((warn_unused_result));
/* Deep copy of src into dst (uninitialised before; config_free it after). */
int config_copy(struct config *dst, const struct config *src) __attribute__((warn_unused_result));
/* True if user is listed in admin_users. */
bool config_is_admin(const struct config *c, const char *user);
/* True if auth_file must be loaded: scram-sha-256, or a console that logs in with passwords
 * (admin_auth_trust = off) and an auth_file to take them from. */
bool config_needs_auth_file(const struct config *c);
/* True if user is listed in stats_users. */
bool config_is_stats(const struct config *c, const char *user);
/* True if the config string key k may hold a secret (a [backends] conninfo): shown masked. */
bool config_key_secret(const struct config_key *k);
