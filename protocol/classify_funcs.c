/* protocol/classify_funcs.c: what classification knows about function names: the built-in
 * side-effect-free allow-list, the nondeterministic ones, and the operator's extra list. */
#include <stdlib.h>
#include <string.h>

#include "protocol/classify.h"

#define R  CLASSIFY_FUNCS_READ
#define N  CLASSIFY_FUNCS_NONDET
#define RN (CLASSIFY_FUNCS_READ | CLASSIFY_FUNCS_NONDET)
#define K  CLASSIFY_FUNCS_KNOWN

struct func_entry {
    const char *name;
    unsigned flags;
};

/* Sorted by strcmp (bsearch). R: immutable or stable in PostgreSQL and without side effects.
 * RN: also side-effect free but the value differs between calls or between the two backends
 * (clock, randomness, physical sizes, server version; age(x) reads the current date).
 * N: nondeterministic and NOT a read (sequence state). K | N: built in, not a read, and its
 * value differs between the two servers (a transaction id): a write storing it is pinned.
 * K: built in, NOT a read (so a call mirrors), and not code of the user's: it neither draws
 * sequence values nor touches named statements (classify_result.user_code stays false):
 * pg_advisory_*, pg_try_advisory_*, pg_notify, pg_sleep*, set_config, txid_current,
 * pg_current_xact_id.
 * Deliberately absent, so that a call mirrors and counts as user code: setval, lo_*, dblink*,
 * pg_terminate_backend, pg_cancel_backend, inet_{client,server}_addr (differ per backend
 * connection), and every function not listed. Names that the grammar turns into other nodes
 * (coalesce, greatest, least, current_user, ...) are listed anyway: harmless, and robust to grammar
 * changes. SQL syntax that becomes pg_catalog calls is covered (extract, substring, position,
 * overlay, trim -> btrim/ltrim/rtrim, AT TIME ZONE -> timezone, IS NORMALIZED, SIMILAR TO,
 * OVERLAPS, COLLATION FOR). */
static const struct func_entry builtin[] = {
    {"abs", R},
    {"acos", R},
    {"age", RN},
    {"array_agg", R},
    {"array_append", R},
    {"array_cat", R},
    {"array_dims", R},
    {"array_fill", R},
    {"array_length", R},
    {"array_lower", R},
    {"array_ndims", R},
    {"array_position", R},
    {"array_positions", R},
    {"array_prepend", R},
    {"array_remove", R},
    {"array_replace", R},
    {"array_to_json", R},
    {"array_to_string", R},
    {"array_upper", R},
    {"ascii", R},
    {"asin", R},
    {"atan", R},
    {"atan2", R},
    {"avg", R},
    {"bit_and", R},
    {"bit_length", R},
    {"bit_or", R},
    {"bool_and", R},
    {"bool_or", R},
    {"btrim", R},
    {"cardinality", R},
    {"cbrt", R},
    {"ceil", R},
    {"ceiling", R},
    {"char_length", R},
    {"character_length", R},
    {"chr", R},
    {"clock_timestamp", RN},
    {"coalesce", R},
    {"col_description", R},
    {"concat", R},
    {"concat_ws", R},
    {"convert_from", R},
    {"convert_to", R},
    {"corr", R},
    {"cos", R},
    {"cot", R},
    {"count", R},
    {"covar_pop", R},
    {"covar_samp", R},
    {"cume_dist", R},
    {"current_database", R},
    {"current_schema", R},
    {"current_schemas", R},
    {"current_setting", R},
    {"current_user", R},
    {"currval", N},
    {"date_bin", R},
    {"date_part", R},
    {"date_trunc", R},
    {"decode", R},
    {"degrees", R},
    {"dense_rank", R},
    {"div", R},
    {"encode", R},
    {"every", R},
    {"exp", R},
    {"extract", R},
    {"factorial", R},
    {"first_value", R},
    {"floor", R},
    {"format", R},
    {"format_type", R},
    {"gcd", R},
    {"gen_random_uuid", RN},
    {"generate_series", R},
    {"generate_subscripts", R},
    {"get_bit", R},
    {"get_byte", R},
    {"greatest", R},
    {"has_column_privilege", R},
    {"has_database_privilege", R},
    {"has_function_privilege", R},
    {"has_schema_privilege", R},
    {"has_sequence_privilege", R},
    {"has_table_privilege", R},
    {"host", R},
    {"hostmask", R},
    {"initcap", R},
    {"is_normalized", R},
    {"isfinite", R},
    {"json_agg", R},
    {"json_array_elements", R},
    {"json_array_elements_text", R},
    {"json_array_length", R},
    {"json_build_array", R},
    {"json_build_object", R},
    {"json_each", R},
    {"json_each_text", R},
    {"json_extract_path", R},
    {"json_extract_path_text", R},
    {"json_object", R},
    {"json_object_agg", R},
    {"json_object_keys", R},
    {"json_populate_record", R},
    {"json_populate_recordset", R},
    {"json_strip_nulls", R},
    {"json_to_record", R},
    {"json_to_recordset", R},
    {"json_typeof", R},
    {"jsonb_agg", R},
    {"jsonb_array_elements", R},
    {"jsonb_array_elements_text", R},
    {"jsonb_array_length", R},
    {"jsonb_build_array", R},
    {"jsonb_build_object", R},
    {"jsonb_each", R},
    {"jsonb_each_text", R},
    {"jsonb_extract_path", R},
    {"jsonb_extract_path_text", R},
    {"jsonb_insert", R},
    {"jsonb_object", R},
    {"jsonb_object_agg", R},
    {"jsonb_object_keys", R},
    {"jsonb_path_exists", R},
    {"jsonb_path_match", R},
    {"jsonb_path_query", R},
    {"jsonb_path_query_array", R},
    {"jsonb_path_query_first", R},
    {"jsonb_populate_record", R},
    {"jsonb_populate_recordset", R},
    {"jsonb_pretty", R},
    {"jsonb_set", R},
    {"jsonb_set_lax", R},
    {"jsonb_strip_nulls", R},
    {"jsonb_to_record", R},
    {"jsonb_to_recordset", R},
    {"jsonb_typeof", R},
    {"justify_days", R},
    {"justify_hours", R},
    {"justify_interval", R},
    {"lag", R},
    {"last_value", R},
    {"lastval", N},
    {"lcm", R},
    {"lead", R},
    {"least", R},
    {"left", R},
    {"length", R},
    {"ln", R},
    {"log", R},
    {"log10", R},
    {"lower", R},
    {"lpad", R},
    {"ltrim", R},
    {"make_date", R},
    {"make_interval", R},
    {"make_time", R},
    {"make_timestamp", R},
    {"make_timestamptz", R},
    {"masklen", R},
    {"max", R},
    {"md5", R},
    {"min", R},
    {"min_scale", R},
    {"mod", R},
    {"mode", R},
    {"netmask", R},
    {"network", R},
    {"nextval", N},
    {"normalize", R},
    {"now", RN},
    {"nth_value", R},
    {"ntile", R},
    {"num_nonnulls", R},
    {"num_nulls", R},
    {"obj_description", R},
    {"octet_length", R},
    {"overlaps", R},
    {"overlay", R},
    {"percent_rank", R},
    {"percentile_cont", R},
    {"percentile_disc", R},
    {"pg_advisory_lock", K},
    {"pg_advisory_lock_shared", K},
    {"pg_advisory_unlock", K},
    {"pg_advisory_unlock_all", K},
    {"pg_advisory_unlock_shared", K},
    {"pg_advisory_xact_lock", K},
    {"pg_advisory_xact_lock_shared", K},
    {"pg_collation_for", R},
    {"pg_column_size", R},
    {"pg_current_snapshot", RN},
    {"pg_current_xact_id", K | N},
    {"pg_current_xact_id_if_assigned", K | N},
    {"pg_database_size", RN},
    {"pg_get_constraintdef", R},
    {"pg_get_expr", R},
    {"pg_get_functiondef", R},
    {"pg_get_indexdef", R},
    {"pg_get_serial_sequence", R},
    {"pg_get_triggerdef", R},
    {"pg_get_userbyid", R},
    {"pg_get_viewdef", R},
    {"pg_has_role", R},
    {"pg_indexes_size", RN},
    {"pg_notify", K},
    {"pg_relation_size", RN},
    {"pg_size_bytes", R},
    {"pg_size_pretty", R},
    {"pg_sleep", K},
    {"pg_sleep_for", K},
    {"pg_sleep_until", K},
    {"pg_table_is_visible", R},
    {"pg_table_size", RN},
    {"pg_total_relation_size", RN},
    {"pg_try_advisory_lock", K},
    {"pg_try_advisory_lock_shared", K},
    {"pg_try_advisory_xact_lock", K},
    {"pg_try_advisory_xact_lock_shared", K},
    {"pg_typeof", R},
    {"phraseto_tsquery", R},
    {"pi", R},
    {"plainto_tsquery", R},
    {"position", R},
    {"power", R},
    {"quote_ident", R},
    {"quote_literal", R},
    {"quote_nullable", R},
    {"radians", R},
    {"random", RN},
    {"rank", R},
    {"regexp_count", R},
    {"regexp_instr", R},
    {"regexp_like", R},
    {"regexp_match", R},
    {"regexp_matches", R},
    {"regexp_replace", R},
    {"regexp_split_to_array", R},
    {"regexp_split_to_table", R},
    {"regexp_substr", R},
    {"regr_avgx", R},
    {"regr_avgy", R},
    {"regr_count", R},
    {"regr_intercept", R},
    {"regr_r2", R},
    {"regr_slope", R},
    {"regr_sxx", R},
    {"regr_sxy", R},
    {"regr_syy", R},
    {"repeat", R},
    {"replace", R},
    {"reverse", R},
    {"right", R},
    {"round", R},
    {"row_number", R},
    {"row_to_json", R},
    {"rpad", R},
    {"rtrim", R},
    {"scale", R},
    {"session_user", R},
    {"set_config", K},
    {"sha224", R},
    {"sha256", R},
    {"sha384", R},
    {"sha512", R},
    {"sign", R},
    {"similar_to_escape", R},
    {"sin", R},
    {"split_part", R},
    {"sqrt", R},
    {"starts_with", R},
    {"statement_timestamp", RN},
    {"stddev", R},
    {"stddev_pop", R},
    {"stddev_samp", R},
    {"string_agg", R},
    {"string_to_array", R},
    {"string_to_table", R},
    {"strpos", R},
    {"substr", R},
    {"substring", R},
    {"sum", R},
    {"tan", R},
    {"timeofday", RN},
    {"timezone", R},
    {"to_ascii", R},
    {"to_char", R},
    {"to_date", R},
    {"to_hex", R},
    {"to_json", R},
    {"to_jsonb", R},
    {"to_number", R},
    {"to_timestamp", R},
    {"to_tsquery", R},
    {"to_tsvector", R},
    {"transaction_timestamp", RN},
    {"translate", R},
    {"trim_scale", R},
    {"trunc", R},
    {"ts_headline", R},
    {"ts_rank", R},
    {"ts_rank_cd", R},
    {"txid_current", K | N},
    {"txid_current_if_assigned", K | N},
    {"txid_current_snapshot", RN},
    {"unnest", R},
    {"upper", R},
    {"uuid_generate_v1", RN},
    {"uuid_generate_v1mc", RN},
    {"uuid_generate_v3", R},
    {"uuid_generate_v4", RN},
    {"uuid_generate_v5", R},
    {"var_pop", R},
    {"var_samp", R},
    {"variance", R},
    {"version", RN},
    {"websearch_to_tsquery", R},
    {"width_bucket", R},
    {"xmlagg", R},
    {"xmlexists", R},
};

static int entry_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct func_entry *)elem)->name);
}

static unsigned builtin_flags(const char *name)
{
    const struct func_entry *e =
        bsearch(name, builtin, sizeof builtin / sizeof builtin[0], sizeof builtin[0], entry_cmp);
    return e != NULL ? e->flags : 0;
}

/* "f" matches an unqualified call; "s.f" matches schema s and name f exactly. */
/* pattern is a name, or a prefix ending in '*' (st_* for an extension's functions). */
static bool name_matches(const char *pattern, const char *name)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*') {
        return strncmp(pattern, name, n - 1) == 0;
    }
    return strcmp(pattern, name) == 0;
}

static bool option_matches(const char *entry, const char *schema, const char *name)
{
    const char *dot = strchr(entry, '.');
    if (dot == NULL) {
        return schema == NULL && name_matches(entry, name);
    }
    size_t slen = (size_t)(dot - entry);
    return schema != NULL && strlen(schema) == slen && strncmp(entry, schema, slen) == 0 &&
           name_matches(dot + 1, name);
}

unsigned classify_funcs_flags(const char *schema, const char *name,
                              const struct classify_options *opt)
{
    if (name == NULL) {
        return 0;
    }
    unsigned flags = 0;
    if (schema == NULL || strcmp(schema, "pg_catalog") == 0) {
        flags = builtin_flags(name);
    }
    for (size_t i = 0; opt != NULL && i < opt->n_read_only_functions; i++) {
        const char *e = opt->read_only_functions[i];
        if (e != NULL && option_matches(e, schema, name)) {
            flags |= CLASSIFY_FUNCS_READ;
        }
    }
    return flags;
}
