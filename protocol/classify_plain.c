/* protocol/classify_plain.c: the relay mode's parse-free proof that a simple query is one plain
 * read or write (see classify_plain.h for the rules). One pass over the bytes, no allocation. */
#include "protocol/classify_plain.h"

#include <stddef.h>
#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; /* scan.l's space */
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Could c continue an identifier or keyword (the server's ident_cont, high bytes included)? */
static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || (unsigned char)c >= 0x80;
}

/* Does p (of n bytes) start with word, case-insensitively (word is lower case)? */
static bool starts_with(const char *p, size_t n, const char *word)
{
    size_t k = strlen(word);
    if (n < k) {
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        if (lower(p[i]) != word[i]) {
            return false;
        }
    }
    return true;
}

enum first_word { FW_OTHER, FW_READ, FW_WRITE, FW_INSERT };

static enum first_word first_word(const char *p, size_t n, size_t *end)
{
    static const struct {
        const char *word;
        enum first_word kind;
    } words[] = {{"select", FW_READ},   {"values", FW_READ},  {"table", FW_READ},
                 {"insert", FW_INSERT}, {"update", FW_WRITE}, {"delete", FW_WRITE}};
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++) {
        size_t k = strlen(words[i].word);
        if (starts_with(p, n, words[i].word) && (n == k || !is_ident(p[k]))) {
            *end = k;
            return words[i].kind;
        }
    }
    return FW_OTHER;
}

/* Does any of the words occur anywhere in p (as a substring, case-insensitively)? */
static bool has_word(const char *p, size_t n, const char *const *words, size_t nwords)
{
    for (size_t i = 0; i < n; i++) {
        char c = lower(p[i]);
        for (size_t w = 0; w < nwords; w++) {
            if (c == words[w][0] && starts_with(p + i, n - i, words[w])) {
                return true;
            }
        }
    }
    return false;
}

/* Words after which '(' opens a row, a list or a subquery, never a call: reserved keywords and
 * col_name keywords, which no unqualified function may be named (gram.y's func_name takes
 * type_function_name: identifiers, unreserved and type_func_name keywords). SET, BY (unreserved)
 * and IS (type_func_name) may name a function, so they are not here. A word after '.' is a
 * qualified name whatever it is (paren_may_call). */
static bool paren_keyword(const char *w, size_t n)
{
    static const char *const words[] = {"values", "in",   "and",  "or",   "not",   "where",
                                        "select", "when", "then", "else", "on",    "any",
                                        "all",    "some", "case", "from", "having"};
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++) {
        if (strlen(words[i]) == n && starts_with(w, n, words[i])) {
            return true;
        }
    }
    return false;
}

/* The offset of an INSERT's column list '(' (INSERT INTO name ( ...), or 0 when it has none. */
static size_t insert_columns_at(const char *p, size_t n, size_t at)
{
    static const char *const head[] = {"insert", "into"};
    for (size_t w = 0; w < 2; w++) {
        size_t k = strlen(head[w]);
        if (!starts_with(p + at, n - at, head[w]) || at + k >= n || !is_space(p[at + k])) {
            return 0;
        }
        at += k;
        while (at < n && is_space(p[at])) {
            at++;
        }
    }
    size_t name = at;
    while (at < n && (is_ident(p[at]) || p[at] == '.')) {
        at++;
    }
    while (at > name && at < n && is_space(p[at])) {
        at++;
    }
    return at > name && at < n && p[at] == '(' ? at : 0;
}

/* Could the '(' at p[i] open a call? It follows a word that is no keyword of paren_keyword, or a
 * quoted name; comments are refused before (they could hide what comes before the '('). */
static bool paren_may_call(const char *p, size_t i)
{
    size_t j = i;
    while (j > 0 && is_space(p[j - 1])) {
        j--;
    }
    if (j == 0) {
        return false;
    }
    if (p[j - 1] == '"') {
        return true;
    }
    if (!is_ident(p[j - 1])) {
        return false;
    }
    size_t end = j;
    while (j > 0 && is_ident(p[j - 1])) {
        j--;
    }
    size_t before = j;
    while (before > 0 && is_space(p[before - 1])) {
        before--;
    }
    if (before > 0 && p[before - 1] == '.') {
        return true; /* s.word( : a qualified name may be any keyword (app.in(42)) */
    }
    return !paren_keyword(p + j, end - j);
}

/* One statement (no ';' but at the end), no comment, and no '(' that may open a call (but an
 * INSERT's column list at cols, 0 for none). */
static bool one_statement_no_call(const char *p, size_t n, size_t cols)
{
    for (size_t i = 0; i < n; i++) {
        if ((p[i] == '-' && i + 1 < n && p[i + 1] == '-') ||
            (p[i] == '/' && i + 1 < n && p[i + 1] == '*')) {
            return false;
        }
        if (((unsigned char)p[i] < 0x20 && !is_space(p[i])) || p[i] == 0x7f) {
            return false; /* a control byte: no token of the server's; a parse decides */
        }
        if (p[i] == '(' && i != cols && paren_may_call(p, i)) {
            return false;
        }
        if (p[i] == ';') {
            for (size_t j = i + 1; j < n; j++) {
                if (p[j] != ';' && !is_space(p[j])) {
                    return false;
                }
            }
            return true;
        }
    }
    return true;
}

bool classify_plain(const char *sql, struct classify_result *out)
{
    static const char *const calls[] = {"zone", "normalized", "escape", "similar"};
    static const char *const read_words[] = {"for", "into"};
    if (!sql || !out) {
        return false;
    }
    size_t n = strlen(sql);
    size_t at = 0;
    while (at < n && is_space(sql[at])) {
        at++;
    }
    size_t wlen = 0;
    enum first_word fw = first_word(sql + at, n - at, &wlen);
    size_t cols = fw == FW_INSERT ? insert_columns_at(sql, n, at) : 0;
    if (fw == FW_OTHER || !one_statement_no_call(sql, n, cols) ||
        has_word(sql + at + wlen, n - at - wlen, calls, sizeof(calls) / sizeof(*calls)) ||
        (fw == FW_READ && has_word(sql + at + wlen, n - at - wlen, read_words,
                                   sizeof(read_words) / sizeof(*read_words)))) {
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->kind = fw == FW_READ ? CLASSIFY_READ : CLASSIFY_MIRROR;
    out->txn = out->txn_last = CLASSIFY_TXN_NONE;
    out->dml_only = true;
    out->inserts = fw == FW_INSERT;
    out->catalog_safe = true;
    out->nstatements = 1;
    return true;
}
