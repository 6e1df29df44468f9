/* config/state.h: the state file: the [cutover] dials persisted across restarts, in a small
 * self-checking text format. Pure file I/O: no loops, no locks (the caller serializes writes).
 *
 * Format (every line ends with '\n'):
 *
 *     # pgdual state file: written by pgdual; edit the config file or use the admin console
 *     version = 1
 *     primary = old
 *     read_new_percent = 25
 *     ...                         one "key = value" line per [cutover] dial
 *     secondary_state = diverged  the secondary's sync state (proxy/dualwrite/sync_state.h), and
 * since secondary_since = 1796000000000    when (Unix ms); both absent in files of older pgduals
 *     secondary_reconcile = *     what the next reconciliation must cover: "*" every table, or
 *                                 "db:table,db:table" (absent: every table, as "*")
 *     secondary_pass = 7          the last reconciliation pass id handed out (absent: 0)
 *     checksum = 0123456789abcdef  XXH64 (seed 0) of every byte before this line, 16 hex digits
 *
 * The checksum line is also the end marker: nothing may follow it. A file without it (a torn
 * or truncated write), with another checksum, an unknown key, a key twice, or a bad value is
 * refused as a whole. Keys missing from a well-formed file keep the caller's value (a newer
 * pgdual may know more dials than the one that wrote the file). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "config/dials.h"

#define STATE_VERSION   1
#define STATE_MAX_BYTES (64 * 1024) /* a state file is a few hundred bytes; refuse anything big */

#define STATE_SECONDARY_NAME_MAX 24

/* The secondary's sync state as the file holds it. The name is checked here only for its shape
 * (lower-case letters and '_'); the proxy knows the states (an unknown name refuses the start).
 * An empty name means the file did not say (the secondary is taken to be in_sync). */
#define STATE_RECONCILE_MAX 4096

struct state_secondary {
    char name[STATE_SECONDARY_NAME_MAX];
    int64_t since_ms; /* Unix time in ms when it entered that state; 0 = unknown */
    /* The tables the next reconciliation must cover: "*" (or "") every table, else
     * "db:table" entries separated by commas (no newline; written only with a name). */
    char reconcile[STATE_RECONCILE_MAX];
    /* The last reconciliation pass id handed out (line secondary_pass; 0 = none): a restart
     * numbers its passes after it, so a DONE of a pass begun before the restart is stale. */
    uint64_t pass;
};

/* XXH64 (seed 0) of n bytes: the checksum the last line carries. */
uint64_t state_checksum(const void *p, size_t n);
/* Write the whole file text for d and sec (NULL or an empty name: no secondary lines) into buf
 * (NUL-terminated). Returns its length, or -ENOSPC when cap is too small. */
int state_format(const struct dials *d, const struct state_secondary *sec, char *buf, size_t cap)
    __attribute__((warn_unused_result));
/* Parse a whole file text of len bytes; on success the dials it names are set in *d (others
 * keep their value) and, when sec is not NULL, *sec is set (an empty name if the file has no
 * secondary_state line). On failure *d and *sec are unchanged and err says what is wrong. */
int state_parse(const char *text, size_t len, struct dials *d, struct state_secondary *sec,
                char *err, size_t errlen) __attribute__((warn_unused_result));
/* Read and parse path. 1 = loaded into *d, 0 = the file does not exist (*d unchanged), < 0 =
 * unreadable or corrupt: err is one line naming the file and what is wrong. */
int state_load(const char *path, struct dials *d, struct state_secondary *sec, char *err,
               size_t errlen) __attribute__((warn_unused_result));
/* Replace path atomically with d and sec (as state_format): write "<path>.tmp" in the same
 * directory, fsync it, rename it over path, fsync the directory. When this returns 0 the new dials
 * survive a crash; on error the old file is intact and err names the failing step. */
int state_save(const char *path, const struct dials *d, const struct state_secondary *sec,
               char *err, size_t errlen) __attribute__((warn_unused_result));
