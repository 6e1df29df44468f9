/* protocol/classify_plain.h: the relay mode's look at a simple query without a parse: proves, from
 * the raw bytes alone, that a text is one plain SELECT / VALUES / TABLE or one plain INSERT /
 * UPDATE / DELETE that calls no function. Pure: no I/O, no clock, no globals.
 *
 * What "proven" means, checked on the bytes (quotes and comments are not read, so a word inside a
 * literal counts as well: a false alarm only costs a parse):
 * - the text starts (after white space) with the word SELECT, VALUES, TABLE, INSERT, UPDATE or
 *   DELETE: so it is that statement (a COPY, LISTEN, PREPARE, DO, CALL, SET, DDL ... starts with
 *   its own word);
 * - no ';' other than at the end (only white space and ';' after it): one statement, however the
 *   server lexes quotes (standard_conforming_strings, backslash encodings);
 * - no comment (-- or slash-star: it could stand between a function's name and its '(');
 * - no '(' that may open a call: every '(' follows a keyword that opens a row, a list or a
 *   subquery (VALUES, IN, AND, OR, NOT, WHERE, SELECT, SET, WHEN, THEN, ELSE, ON, ANY, ALL, SOME,
 *   IS, BY, CASE, FROM, HAVING) or a byte that ends no name (an operator, ',', '('), or is an
 *   INSERT's column list (INSERT INTO name ( ...); every call pgdual could see needs one, but for
 *   the paren-less forms below;
 * - none of the words ZONE (AT TIME ZONE), NORMALIZED (IS NORMALIZED), ESCAPE and SIMILAR (LIKE /
 *   SIMILAR TO ... ESCAPE), whose grammar makes function calls without '(';
 * - a SELECT / VALUES / TABLE holds neither FOR (a locking clause) nor INTO (SELECT INTO creates a
 *   table).
 * What it cannot see the parse cannot see either (views, operators, casts, triggers calling
 * functions). */
#pragma once
#include <stdbool.h>

#include "protocol/classify.h"

/* true: sql is proven plain and *out holds its class as classify_statement would give it for
 * everything the relay mode reads: kind (READ for SELECT/VALUES/TABLE, MIRROR for the writes),
 * dml_only, inserts (INSERT), catalog_safe, nstatements = 1, no transaction control, effects,
 * user code, LISTEN or COPY. nondeterministic (CURRENT_TIMESTAMP needs no '(') and the fingerprint
 * are not computed: false and 0. false: not proven (*out untouched); classify the text. */
bool classify_plain(const char *sql, struct classify_result *out);
