/* config/userlist.h: the auth_file ("user" "password-or-verifier" per line, pgbouncer's
 * userlist.txt format). Parsing only; what a password means is the auth module's business. */
#pragma once
#include <stddef.h>

struct userlist_entry {
    char *user;
    char *password; /* plain text, "SCRAM-SHA-256$..." verifier, or "md5..." hash, as written */
};

struct userlist {
    struct userlist_entry *entries;
    size_t count;
};

/* Load and parse path. On error returns a negative code and writes a message naming the file
 * and line into err. Lines: `"user" "password"`, a doubled quote "" inside quotes is one quote,
 * blank lines and lines starting with ';' or '#' are ignored. */
int userlist_load(const char *path, struct userlist **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Parse from memory (same rules); `name` is used in error messages. */
int userlist_parse(const char *text, size_t len, const char *name, struct userlist **out, char *err,
                   size_t errlen) __attribute__((warn_unused_result));
const struct userlist_entry *userlist_find(const struct userlist *ul, const char *user);
void userlist_free(struct userlist *ul);
