/* tools/verify/keyless.h: tables without a primary key, compared as multisets of rows. */
#pragma once

struct table;

/* Called when a keyless table's count or aggregate hash differs: marks the table different,
 * and counts rows only on one side by grouping row hashes on both sides (16 bytes per distinct
 * row travel). With --repair, queues the INSERT / DELETE statements. */
void keyless_start(struct table *t);
