/* proxy/session/auth.h: the client authentication table built from auth_file: user -> SCRAM secret.
 */
#pragma once
#include <stddef.h>

struct auth_table;
struct scram_secret;

/* Load path (pgbouncer userlist.txt format). Plain passwords are turned into SCRAM secrets
 * once, here; "md5..." entries cannot serve SCRAM and are refused with an error. */
int auth_table_load(const char *path, struct auth_table **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
const struct scram_secret *auth_table_find(const struct auth_table *t, const char *user);
void auth_table_free(struct auth_table *t);
