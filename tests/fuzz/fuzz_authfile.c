/* tests/fuzz/fuzz_authfile.c: fuzz target: arbitrary bytes as an auth_file -> userlist_parse.
 * Every entry parsed is a user pgdual finds again by name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/userlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct userlist *ul = NULL;
    char err[256];
    err[0] = '\0';
    int rc = userlist_parse((const char *)data, size, "fuzz", &ul, err, sizeof err);
    if (rc < 0) {
        if (ul != NULL || err[0] == '\0' || memchr(err, 0, sizeof err) == NULL) {
            abort(); /* a refusal leaves nothing behind and says why */
        }
        return 0;
    }
    if (ul == NULL) {
        abort();
    }
    for (size_t i = 0; i < ul->count; i++) {
        const struct userlist_entry *e = &ul->entries[i];
        if (e->user == NULL || e->password == NULL) {
            abort();
        }
        const struct userlist_entry *found = userlist_find(ul, e->user);
        if (found == NULL || strcmp(found->user, e->user) != 0) {
            abort();
        }
    }
    userlist_free(ul);
    return 0;
}
