/* protocol/admin_parse.h: the admin console's command syntax: a query text split into
 * ';'-separated commands, a command into words, and a command's leading keywords matched
 * against those words. What the commands do is proxy/control/admin.c's business. Pure. */
#pragma once
#include <stdbool.h>

#define ADMIN_MAX_WORDS 8 /* a command of more words is a syntax error */
#define ADMIN_CMD_WORDS 3 /* keywords that name a command, at most (NULL-padded) */

/* The next command of a ';'-separated text, or NULL at its end. *cursor starts at the text (which
 * is modified: the ';' that ends the command becomes NUL) and is left after it. A ';' inside a
 * '...' or "..." string (opened at the start of a word, as admin_split reads them) does not end
 * a command. */
char *admin_next_command(char **cursor);

/* Split one command (modified in place) into words: blanks separate words; a '...' or "..."
 * string is one word (its quotes removed); '=' is a word of its own, also in "key=value".
 * Returns the number of words, or -1 for an unterminated string or more than max words. */
int admin_split(char *p, char **argv, int max);

/* The number of keywords of kw (up to ADMIN_CMD_WORDS, NULL-padded; compared without case) when
 * argv starts with all of them, else -1. */
int admin_keywords_match(const char *const kw[ADMIN_CMD_WORDS], char *const *argv, int argc);
