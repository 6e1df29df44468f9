/* config/config.h: the pgdual.ini file: one table of keys (name, type, offset, default, bounds,
 * runtime flag) read by the parser, SHOW CONFIG, SET and the README's reference alike. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "config/dials.h"

enum auth_type { AUTH_TRUST, AUTH_SCRAM };
enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

struct config {
    /* [pgdual] */
    char *listen_addr;
    int listen_port; /* 0 = pick a free port (printed on stderr as "listening on ...") */
    int workers;
    int auth_type; /* enum auth_type */
    char *auth_file;
    char *admin_users; /* comma-separated */
    char *state_file;
    char *journal_dir;
    char *divergence_log;
    int metrics_port;
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
int config_load(struct config *c, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void config_free(struct config *c);

const struct config_key *config_find_key(const char *section, const char *name);
/* Set one key from its text form (validated). section may be NULL to search every section. */
int config_set(struct config *c, const struct config_key *k, const char *value, char *err,
               size_t errlen) __attribute__((warn_unused_result));
/* The value of k in c as text. */
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
