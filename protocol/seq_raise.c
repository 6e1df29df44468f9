/* protocol/seq_raise.c: see seq_raise.h. */
#include "protocol/seq_raise.h"

/* Sequences found two ways: owned by a column (serial: pg_depend 'a'; identity: 'i'), or named
 * by a column default (the default's pg_attrdef row depends on the sequence: a shared sequence).
 * Temporary tables are left out (another session's cannot be read). lock_timeout is the
 * transaction's own for the block and set back after it: inside the client's transaction block
 * the value it had stays until that block ends, as it would have. */
const char seq_raise_sql[] =
    "DO $pgdual_raise$\n"
    "DECLARE\n"
    "    r record;\n"
    "    m bigint;\n"
    "    last bigint;\n"
    "    saved text := pg_catalog.current_setting('lock_timeout');\n"
    "BEGIN\n"
    "    PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);\n"
    "    FOR r IN\n"
    "        SELECT DISTINCT q.seqrelid AS seq, q.seqincrement AS inc, q.seqstart AS start,\n"
    "               n.nspname AS nsp, c.relname AS rel, a.attname AS col\n"
    "        FROM (SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS att\n"
    "              FROM pg_catalog.pg_depend d\n"
    "              WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
    "                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
    "                AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0\n"
    "              UNION\n"
    "              SELECT d.refobjid, ad.adrelid, ad.adnum\n"
    "              FROM pg_catalog.pg_attrdef ad\n"
    "              JOIN pg_catalog.pg_depend d\n"
    "                ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass\n"
    "               AND d.objid = ad.oid\n"
    "               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass) u\n"
    "        JOIN pg_catalog.pg_sequence q ON q.seqrelid = u.seq\n"
    "        JOIN pg_catalog.pg_class c ON c.oid = u.rel AND c.relkind IN ('r', 'p')\n"
    "             AND c.relpersistence <> 't'\n"
    "        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
    "        JOIN pg_catalog.pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att\n"
    "        WHERE EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = u.rel\n"
    "                      AND i.indisunique AND i.indkey[0] = u.att)\n"
    "    LOOP\n"
    "        BEGIN\n"
    "            EXECUTE pg_catalog.format('SELECT pg_catalog.%s(%I)::bigint FROM %I.%I',\n"
    "                                      CASE WHEN r.inc > 0 THEN 'max' ELSE 'min' END,\n"
    "                                      r.col, r.nsp, r.rel) INTO m;\n"
    "            last := pg_catalog.pg_sequence_last_value(r.seq);\n"
    "            IF m IS NOT NULL AND (CASE WHEN r.inc > 0\n"
    "                                  THEN m > COALESCE(last, r.start - r.inc)\n"
    "                                  ELSE m < COALESCE(last, r.start - r.inc) END) THEN\n"
    "                PERFORM pg_catalog.setval(r.seq, m, true);\n"
    "            END IF;\n"
    "        EXCEPTION WHEN OTHERS THEN\n"
    "            NULL;\n"
    "        END;\n"
    "    END LOOP;\n"
    "    PERFORM pg_catalog.set_config('lock_timeout', saved, true);\n"
    "END\n"
    "$pgdual_raise$";

void seq_raise_put(struct wbuf *out, const char *name)
{
    wire_put_own_statement(out, name, seq_raise_sql);
}
