/* proxy/session/auth.c: builds the user -> SCRAM secret table from the parsed auth file. */
#include "proxy/session/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/userlist.h"
#include "protocol/scram.h"

struct auth_user {
    char *name;
    struct scram_secret secret;
};

struct auth_table {
    struct auth_user *users;
    size_t count;
};

static int auth_secret_for(const struct userlist_entry *e, struct scram_secret *out, char *err,
                           size_t errlen)
{
    if (scram_is_verifier(e->password)) {
        if (scram_secret_parse(e->password, out) < 0) {
            snprintf(err, errlen, "user \"%s\": malformed SCRAM verifier", e->user);
            return -1;
        }
        return 0;
    }
    if (strncmp(e->password, "md5", 3) == 0 && strlen(e->password) == 35) {
        snprintf(err, errlen,
                 "user \"%s\": md5 hashes cannot serve scram-sha-256; give a plain password or a "
                 "SCRAM verifier",
                 e->user);
        return -1;
    }
    if (scram_secret_from_password(e->password, out) < 0) {
        snprintf(err, errlen, "user \"%s\": cannot derive a SCRAM secret", e->user);
        return -1;
    }
    return 0;
}

int auth_table_load(const char *path, struct auth_table **out, char *err, size_t errlen)
{
    struct userlist *ul = NULL;
    int rc = userlist_load(path, &ul, err, errlen);
    if (rc < 0) {
        return rc;
    }
    struct auth_table *t = calloc(1, sizeof(*t));
    if (t) {
        t->users = calloc(ul->count ? ul->count : 1, sizeof(*t->users));
    }
    if (!t || !t->users) {
        free(t);
        userlist_free(ul);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < ul->count; i++) {
        struct auth_user *u = &t->users[t->count];
        if (auth_secret_for(&ul->entries[i], &u->secret, err, errlen) < 0) {
            userlist_free(ul);
            auth_table_free(t);
            return -1;
        }
        u->name = strdup(ul->entries[i].user);
        t->count++;
    }
    userlist_free(ul);
    *out = t;
    return 0;
}

const struct scram_secret *auth_table_find(const struct auth_table *t, const char *user)
{
    for (size_t i = 0; t && i < t->count; i++) {
        if (t->users[i].name && strcmp(t->users[i].name, user) == 0) {
            return &t->users[i].secret;
        }
    }
    return NULL;
}

void auth_table_free(struct auth_table *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->count; i++) {
        free(t->users[i].name);
        explicit_bzero(&t->users[i].secret, sizeof(t->users[i].secret)); /* the SCRAM keys */
    }
    free(t->users);
    free(t);
}
