/* protocol/seq_raise.h: the statement that raises the secondary's sequences past the ids its
 * tables hold, run there before a write that goes to it verbatim and may draw from them.
 *
 * Pinned inserts store the primary's ids on the secondary without drawing from its sequences
 * (DESIGN §5a), so those fall behind the rows. A write pgdual cannot pin (a DO block, a trigger
 * that makes up values, a COPY filling a serial column) draws on the secondary from the
 * sequence itself: without the raise it draws an id a pinned insert stored there already, and
 * its transaction fails there alone (23505) where the primary's committed. Pure: text only. */
#pragma once

#include "protocol/wire.h"

/* A DO block (one statement, no parameters) that, for each sequence a column's default or
 * identity draws from where a unique index leads with that column (a duplicate can only fail
 * there, and max/min is one probe of that index), sets the sequence to the column's largest
 * value (smallest for a descending sequence) when the sequence is behind it. It never lowers a
 * sequence; each sequence is tried alone, and what fails (no privilege, a column that is not a
 * number, a lock not granted within 100 ms) leaves that sequence as it is without failing the
 * block or the transaction around it. Other sessions' uncommitted rows are not seen. */
extern const char seq_raise_sql[];

/* seq_raise_sql as pgdual's own statement (wire_put_own_statement: Close, Parse, Bind, Execute,
 * Close, Sync under name; the client's unnamed statement and portal stay as they are): one
 * ReadyForQuery answers it. */
void seq_raise_put(struct wbuf *out, const char *name);
