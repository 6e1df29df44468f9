/* proxy/control/reload.h: SIGHUP / admin RELOAD: re-read the config file and apply what may change
 * without a restart. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct server;

/* Re-read srv->config_path. All or nothing: a file that does not parse or validate (or an auth
 * file that does not load, or dials that cannot be persisted) is refused, the running config
 * stays, the error is logged and returned in err. Applied on success: changed [cutover] dials
 * (a dial changed in the file since the last load wins and is persisted; others keep their
 * runtime value), log_level, log_literals, auth_type/auth_file/admin_users, backend connection
 * strings and timeouts for new sessions. Changed restart-only keys are logged as warnings and
 * keep their running values. Any thread; reloads are serialized. *switch_gen (may be NULL): the
 * primary switch the reload started (seqsync_outcome), else 0. */
int reload_run(struct server *srv, uint64_t *switch_gen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
