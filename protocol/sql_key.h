/* protocol/sql_key.h: a literal-insensitive cache key of a simple-query text, computed by one
 * pass of a scanner that follows PostgreSQL 15's lexer (src/backend/parser/scan.l, the lexer of
 * libpg_query) where it matters. Pure: no I/O, no clock, no globals.
 *
 * The key is the text with, in statements that begin with SELECT, INSERT, UPDATE, DELETE, MERGE,
 * WITH, VALUES, TABLE or '(' (case-insensitive), every constant replaced by a placeholder: the
 * byte 0x01 followed by the constant's kind (SQL_KEY_INT ... below); runs of whitespace and
 * comments (--, nested slash-star) folded to one space, none at either end; everything else
 * byte-exact (keywords and identifiers keep their case and quoting, $n parameters stay as they
 * are). Constants of other statements (SET, COPY, EXPLAIN, DDL ...) are kept verbatim: their
 * values reach parse-tree fields that are no A_Const, which libpg_query's fingerprint includes.
 * Two texts with one key lex to the same tokens but for the values of folded constants of one
 * kind each, and so parse alike (tests/fuzz/fuzz_sql_key.c checks it against libpg_query).
 *
 * Kinds, as the grammar tells them apart: an integer that fits in int32 (ICONST), any other
 * number (FCONST: decimals, exponents, and integers above 2147483647), a string ('...', E'...',
 * $tag$...$tag$, with '' doubling, backslash escapes and continuation across a newline as the
 * lexer does), a national string N'...' (the lexer adds NCHAR), a bit string B'...' and a hex
 * string X'...'.
 *
 * Constants kept verbatim even in those statements, because their value decides a field of
 * struct classify_result (classify.c, classify_funcs.c were read for every use of a constant):
 * - a string (any form) whose content, after leading blanks, starts with now / today / tomorrow
 *   / yesterday (case-insensitive): type_cast_reads_clock flags 'now'::timestamptz and friends
 *   as nondeterministic;
 * - an escape string (E'...', or '...' when standard_conforming_strings is off) holding a
 *   backslash: its escapes may decode to such a word, or be invalid (a parse error);
 * - every string after a U&'...' or U&"..." (their UESCAPE '...' changes how they decode);
 * - an integer right after "float (" (precision outside 1..53 is a parse error) and after
 *   "current_time (", "current_timestamp (", "localtime (", "localtimestamp (" (the precision is
 *   a field of the node, in the fingerprint);
 * - an integer right after '[': an array bound (int[3]) is an Integer node of the type name, in
 *   the fingerprint (subscripts and ARRAY[...] elements, plain constants, lose the fold).
 * Constants that matter only in statements left verbatim anyway: EXPLAIN (ANALYZE 0 / 'off' /
 * 'false') decides kind; COPY ... FROM/TO '' (an empty file name counts as STDIN/STDOUT) decides
 * is_copy_from/is_copy_to; PREPARE, DEALLOCATE, DECLARE, CLOSE take identifiers, not constants.
 * LIMIT/OFFSET/FETCH values and SET values decide no field.
 *
 * No key (the caller caches by the full text) when the scanner is not sure: an unterminated
 * string, quoted identifier, dollar quote or comment; a number with trailing junk (123abc, 1e,
 * 1..), a parameter with trailing junk ($1a), a '$' that starts neither; a byte outside
 * strings, identifiers and comments that PostgreSQL does not lex as part of a token (control
 * bytes other than space, tab, newline, carriage return and form feed; '\', '{', '}', DEL); a
 * NUL; a key that does not fit the caller's buffer (SQL_KEY_CAP(len) always fits).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define SQL_KEY_PLACEHOLDER '\x01'

/* Kind byte after the placeholder. */
#define SQL_KEY_INT    'i'
#define SQL_KEY_FLOAT  'f'
#define SQL_KEY_STRING 's'
#define SQL_KEY_NCHAR  'n'
#define SQL_KEY_BITS   'b'
#define SQL_KEY_HEX    'x'

/* A buffer this large holds the key of any text of len bytes. */
#define SQL_KEY_CAP(len) (2 * (len) + 1)

/* One folded constant: its bytes in the input (prefix such as E, N, B, X and string
 * continuations included) and its kind. */
struct sql_key_const {
    size_t off;
    size_t len;
    char kind;
};

/* What the scan saw besides the key. consts may be NULL (then only nconsts counts). */
struct sql_key_info {
    /* In: fold the constants of every statement, not only of DML (for tests comparing texts;
     * such a key is no cache key). */
    bool fold_all;
    /* Statements with at least one token, split at ';' outside parentheses; -1 when the
     * scanner cannot tell (a ';' inside parentheses as in CREATE RULE, or BEGIN ATOMIC). */
    int nstatements;
    size_t nconsts;               /* constants folded (also beyond consts_cap) */
    struct sql_key_const *consts; /* the first consts_cap of them, in text order */
    size_t consts_cap;
};

/* The key of sql[0 .. len) into out[0 .. cap) (NUL-terminated), lexing '...' strings as a server
 * with standard_conforming_strings = scs would. Returns the key's length, or -1: no key (see
 * above). info may be NULL. */
long sql_key(const char *sql, size_t len, bool scs, char *out, size_t cap,
             struct sql_key_info *info) __attribute__((warn_unused_result));
