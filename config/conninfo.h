/* config/conninfo.h: secrets kept out of sight: a libpq connection string with its passwords
 * masked, for SHOW CONFIG and the log. Pure: no I/O. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* What a masked secret reads as. */
#define CONNINFO_MASK "********"

/* Writes conninfo to out (cap bytes, always NUL-terminated when cap > 0) with the value of every
 * key that holds a secret (a name containing "password", as password and sslpassword) replaced
 * by CONNINFO_MASK. Both forms are handled: keyword = value pairs (values bare or single-quoted
 * with backslash escapes) and URIs (postgresql://user:secret@host/db?password=secret). The rest
 * is copied as written. Returns true when the whole result fit; on truncation the written prefix
 * is still masked. */
bool conninfo_mask(const char *conninfo, char *out, size_t cap);

/* True if key (a conninfo keyword) holds a secret. */
bool conninfo_key_secret(const char *key, size_t len);

/* True if libpq's message about a connection string it could not parse (PQconninfoParse's
 * errmsg) cannot quote a secret: it names a keyword only. Other messages quote a piece of the
 * string ('missing "=" after "..."', the URI errors quote the whole URI): show them withheld. */
bool conninfo_error_safe(const char *msg);
