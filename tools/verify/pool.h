/* tools/verify/pool.h: asynchronous libpq connections to both sides, a job queue per side. */
#pragma once
#include <stdint.h>

#include <libpq-fe.h>

#include "tools/verify/util.h"

struct pool;

/* Called with each successful result (PGRES_TUPLES_OK / COMMAND_OK); the pool clears it after.
 * May submit further jobs. Returns 0, or <0 to stop the run (after calling pool_fail). */
typedef int (*pool_done_fn)(void *ctx, int side, const PGresult *res);
/* Called about every 200 ms while jobs run (progress display). */
typedef void (*pool_tick_fn)(void *ctx);

/* Set c's session to the formats values travel in from one server to the other (ISO dates,
 * UTC, every float digit, hex bytea): both sides print and read them alike whatever each
 * server's or database's defaults. 0, or -1 with err set. */
int pool_session_formats(PGconn *c, int side, char *err, size_t errlen);
/* Connects per_side connections to each side. NULL on failure with a message in err. */
struct pool *pool_open(const char *const conninfo[2], int per_side, char *err, size_t errlen);
void pool_close(struct pool *p);

/* Opens a read-only REPEATABLE READ transaction on every connection, all connections of a side
 * sharing one exported snapshot, so a side is compared as of one instant. */
int pool_begin(struct pool *p) WUR;
/* Ends those transactions. */
int pool_end(struct pool *p) WUR;

/* Queues a query for any connection of side; sql and params are copied. */
void pool_submit(struct pool *p, int side, const char *sql, int nparams, const char *const *params,
                 pool_done_fn fn, void *ctx);
/* Runs queued jobs, several in flight per side, until none is left. 0 or -1 (see pool_error). */
int pool_run(struct pool *p) WUR;
/* Records the first failure; later ones are ignored. */
void pool_fail(struct pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *pool_error(const struct pool *p);
void pool_set_tick(struct pool *p, pool_tick_fn fn, void *ctx);

/* Connection 0 of a side, for synchronous catalog queries while no job runs. */
PGconn *pool_conn(struct pool *p, int side);
int pool_per_side(const struct pool *p);
/* Bytes the kernel received on connection i of side (TCP_INFO), or -1 if unknown. */
int64_t pool_bytes_received(const struct pool *p, int side, int i);
