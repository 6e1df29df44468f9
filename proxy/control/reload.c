/* proxy/control/reload.c: re-reading the config file (SIGHUP, admin RELOAD): validate everything
 * first, then persist and publish the dials, then swap the config snapshot the workers read. */
#include "proxy/control/reload.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

#include "config/config.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/auth.h"
#include "proxy/session/tls.h"

/* Keys that need a restart keep their running value (from the startup config); a change in
 * the file is only reported. Returns < 0 on allocation failure. */
static int keep_restart_keys(struct config *next, const struct config *running, const char *path)
{
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (k->reload || config_key_equal(next, running, k)) {
            continue;
        }
        char want[256], have[256];
        config_format(next, k, want, sizeof(want));
        config_format(running, k, have, sizeof(have));
        LOG_WARN("reload: %s: [%s] %s changed to \"%s\" but needs a restart; still using \"%s\"",
                 path, k->section, k->name, want, have);
        if (config_copy_key(next, running, k) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* Log the reloadable (non-dial) keys whose value changes. */
static int log_changed_settings(const struct config *next, const struct config *cur)
{
    int n = 0;
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (!k->reload || k->runtime || config_key_equal(next, cur, k)) {
            continue;
        }
        char val[256];
        config_format(next, k, val, sizeof(val));
        LOG_INFO("reload: [%s] %s = %s", k->section, k->name, val);
        n++;
    }
    return n;
}

/* Parse and validate the file, its auth file and its TLS files into *next / *auth / *tls. */
static int reload_read(struct server *srv, struct config *next, struct auth_table **auth,
                       SSL_CTX **tls, char *err, size_t errlen)
{
    char msg[512];
    *tls = NULL;
    config_init_defaults(next);
    if (config_load(next, srv->config_path, err, errlen) < 0) {
        return -EINVAL;
    }
    *auth = NULL;
    if (config_needs_auth_file(next)) {
        if (auth_table_load(next->auth_file, auth, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "%s: auth_file: %s", srv->config_path, msg);
            return -EINVAL;
        }
    }
    if (tls_ctx_load(next, tls, msg, sizeof(msg)) < 0) {
        auth_table_free(*auth);
        *auth = NULL;
        snprintf(err, errlen, "%s: %s", srv->config_path, msg);
        return -EINVAL;
    }
    if (keep_restart_keys(next, srv->cfg, srv->config_path) < 0) {
        auth_table_free(*auth);
        *auth = NULL;
        SSL_CTX_free(*tls);
        *tls = NULL;
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int reload_locked(struct server *srv, uint64_t *switch_gen, char *err, size_t errlen)
{
    struct config next;
    struct auth_table *auth = NULL;
    SSL_CTX *tls = NULL;
    int rc = reload_read(srv, &next, &auth, &tls, err, errlen);
    if (rc < 0) {
        config_free(&next);
        return rc;
    }
    struct dials file_dials = next.dials;
    if (!file_dials.mirror && file_dials.primary == DIAL_OLD) {
        LOG_WARN("reload: %s says mirror = off with primary = old: new receives no writes",
                 srv->config_path);
    }
    struct server_conf *cur = server_conf_get(srv);
    int settings = log_changed_settings(&next, &cur->cfg);
    server_conf_unref(cur);
    struct server_conf *conf = server_conf_new(&next, auth, tls); /* takes all three */
    if (!conf) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* The last fallible step: after it nothing can fail, so the reload is all or nothing. */
    int dials = server_reload_dials(srv, &file_dials, switch_gen, err, errlen);
    if (dials < 0) {
        server_conf_unref(conf);
        return dials;
    }
    log_set_level((enum log_level)conf->cfg.log_level);
    server_conf_publish_take(srv, conf);
    LOG_INFO("reloaded %s: %d setting(s) and %d dial(s) changed", srv->config_path, settings,
             dials);
    return 0;
}

int reload_run(struct server *srv, uint64_t *switch_gen, char *err, size_t errlen)
{
    err[0] = '\0';
    uint64_t gen = 0;
    pthread_mutex_lock(&srv->reload_lock);
    int rc = reload_locked(srv, &gen, err, errlen);
    if (switch_gen) {
        *switch_gen = gen;
    }
    pthread_mutex_unlock(&srv->reload_lock);
    if (rc < 0) {
        LOG_ERR("reload refused, the running config stays: %s", err);
    }
    return rc;
}
