/* tools/verify/probe.h: --live's choice between checksumming a table's key ranges and reading
 * them as leaves at once, from a sample of rows looked up on both sides. */
#pragma once

struct keys_row;
struct table;

/* Samples about 1,000 of the primary's rows (TABLESAMPLE SYSTEM (pct), key + row hash), looks
 * their keys up on the secondary, and then either hands every range cut at bounds (nb packed
 * keys, copied) to the live repair as a leaf, when the share of sampled rows that differ puts
 * about 20 or more differences in each range, or queues the checksums (scan_table_total). */
void probe_start(struct table *t, const struct keys_row *bounds, int nb, double pct);
