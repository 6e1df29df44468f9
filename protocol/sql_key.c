/* protocol/sql_key.c: literal-insensitive cache key of a statement text (see sql_key.h). The
 * comments name the rules of PostgreSQL 15's scan.l each branch follows. */
#include "protocol/sql_key.h"

#include <string.h>
#include <strings.h>

#define WORD_MAX 9 /* longest clock word: "yesterday" */

/* What the last tokens were, for the precision rule (an integer after "float (" ...) and the
 * array bound rule (an integer after '['). */
enum prev_tok { PREV_OTHER, PREV_PREC_NAME, PREV_PREC_PAREN, PREV_BRACKET };

struct scan {
    const char *s;
    size_t len;
    size_t i; /* next input byte */
    char *out;
    size_t cap;
    size_t o; /* bytes written */
    bool scs;
    bool failed;        /* no key */
    bool space_pending; /* whitespace or a comment since the last token */
    bool stmt_started;  /* the current statement has a token */
    bool fold;          /* the current statement's constants are folded */
    bool unsure;        /* statement boundaries unknown: nothing folded from here on */
    bool uescape;       /* a U& string or identifier was seen: strings stay verbatim */
    bool lookahead;     /* the last token is NOT, NULLS or WITH (see step) */
    int depth;          /* parentheses */
    int nstatements;
    enum prev_tok prev;
    struct sql_key_info *info;
};

/* A decoded prefix of a string constant's content, leading blanks skipped. */
struct word {
    char b[WORD_MAX];
    size_t n;
};

static bool is_space(unsigned char c) /* scan.l: space [ \t\n\r\f] */
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool is_newline(unsigned char c)
{
    return c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_start(unsigned char c) /* [A-Za-z\200-\377_] */
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_cont(unsigned char c) /* [A-Za-z\200-\377_0-9\$] */
{
    return is_ident_start(c) || is_digit(c) || c == '$';
}

static bool is_dolq_cont(unsigned char c) /* [A-Za-z\200-\377_0-9] */
{
    return is_ident_start(c) || is_digit(c);
}

/* self and op_chars: single-character tokens or parts of operators, kept verbatim. */
static bool is_op_or_self(unsigned char c)
{
    return c != '\0' && strchr(",()[].;:+-*/%^<>=~!@#&|`?", c) != NULL;
}

static unsigned char at(const struct scan *st, size_t i)
{
    return i < st->len ? (unsigned char)st->s[i] : '\0';
}

static void put(struct scan *st, const char *p, size_t n)
{
    if (st->o + n >= st->cap) {
        st->failed = true;
        return;
    }
    memcpy(st->out + st->o, p, n);
    st->o += n;
}

/* The pending separator before a token. */
static void separate(struct scan *st)
{
    if (st->space_pending && st->o > 0) {
        put(st, " ", 1);
    }
    st->space_pending = false;
}

/* Start a token: the pending separator, and the statement it may begin. */
static void token(struct scan *st, bool dml_start)
{
    separate(st);
    st->lookahead = false;
    if (!st->stmt_started) {
        st->stmt_started = true;
        st->nstatements++;
        st->fold = (dml_start || (st->info != NULL && st->info->fold_all)) && !st->unsure;
    }
}

static void word_add(struct word *w, unsigned char c)
{
    if (w->n == 0 && (is_space(c) || c == '\v')) {
        return; /* leading blanks */
    }
    if (w->n < WORD_MAX) {
        w->b[w->n++] = (char)c;
    }
}

/* Could the string be 'now'::timestamptz and friends (classify.c, type_cast_reads_clock)? */
static bool word_is_clock(const struct word *w)
{
    static const char *const words[] = {"now", "today", "tomorrow", "yesterday"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        size_t n = strlen(words[k]);
        if (w->n >= n && strncasecmp(w->b, words[k], n) == 0) {
            return true;
        }
    }
    return false;
}

/* Emit a constant s[start .. st->i): the placeholder when folded, else its bytes. */
static void constant(struct scan *st, size_t start, char kind, bool verbatim)
{
    token(st, false);
    if (st->fold && !verbatim) {
        char ph[2] = {SQL_KEY_PLACEHOLDER, kind};
        put(st, ph, 2);
        struct sql_key_info *info = st->info;
        if (info != NULL) {
            if (info->consts != NULL && info->nconsts < info->consts_cap) {
                info->consts[info->nconsts] =
                    (struct sql_key_const){.off = start, .len = st->i - start, .kind = kind};
            }
            info->nconsts++;
        }
    } else {
        put(st, st->s + start, st->i - start);
    }
    st->prev = PREV_OTHER;
}

/* quotecontinue: after a closing quote, whitespace holding a newline then a quote continue the
 * same constant. Returns the index of that quote, or 0 for none. The server (scan.l) also allows
 * -- comments in that whitespace; libpg_query does not ('a' -- c<newline>'b' is a syntax error
 * to it), and the key follows libpg_query, whose class it caches. */
static size_t continuation(const struct scan *st, size_t j)
{
    bool newline = false;
    while (j < st->len && is_space(at(st, j))) {
        newline = newline || is_newline(at(st, j));
        j++;
    }
    return newline && at(st, j) == '\'' ? j : 0;
}

enum quote_mode {
    Q_STD,  /* '...': '' doubling (backslash escapes too when scs is off) */
    Q_ESC,  /* E'...': '' doubling and backslash escapes */
    Q_BITS, /* B'...' / X'...': no doubling, no escapes */
    Q_UNI,  /* U&'...': '' doubling, backslashes are unicode escapes, not quote escapes */
};

/* A quoted constant whose first quote is at q; st->i ends after it (continuations included).
 * *backslash: an escape was seen where backslashes escape. */
static void scan_quoted(struct scan *st, size_t q, enum quote_mode mode, struct word *w,
                        bool *backslash)
{
    bool escapes = mode == Q_ESC || (mode == Q_STD && !st->scs);
    bool doubling = mode != Q_BITS;
    for (;;) {
        size_t i = q + 1;
        for (;;) {
            if (i >= st->len) {
                st->failed = true; /* unterminated */
                return;
            }
            unsigned char c = at(st, i);
            if (c == '\\' && escapes) {
                *backslash = true;
                if (i + 1 >= st->len) {
                    st->failed = true;
                    return;
                }
                i += 2;
                continue;
            }
            if (c == '\'') {
                if (doubling && at(st, i + 1) == '\'') {
                    word_add(w, '\'');
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            word_add(w, c);
            i++;
        }
        st->i = i;
        size_t next = continuation(st, i);
        if (next == 0) {
            return;
        }
        q = next;
    }
}

/* A string-like constant starting at start (prefix letters included), first quote at q. */
static void string_const(struct scan *st, size_t start, size_t q, enum quote_mode mode, char kind)
{
    struct word w = {.n = 0};
    bool backslash = false;
    scan_quoted(st, q, mode, &w, &backslash);
    if (st->failed) {
        return;
    }
    bool verbatim = backslash || st->uescape;
    if (kind == SQL_KEY_STRING || kind == SQL_KEY_NCHAR) {
        verbatim = verbatim || word_is_clock(&w);
    }
    if (mode == Q_UNI) {
        st->uescape = true;
        verbatim = true;
    }
    constant(st, start, kind, verbatim);
}

/* "..." (U&"..." from start): "" doubling, kept verbatim. */
static void quoted_ident(struct scan *st, size_t start, size_t q)
{
    size_t i = q + 1;
    for (;;) {
        if (i >= st->len) {
            st->failed = true;
            return;
        }
        if (at(st, i) == '"') {
            if (at(st, i + 1) != '"') {
                break;
            }
            i++;
        }
        i++;
    }
    st->i = i + 1;
    token(st, false);
    put(st, st->s + start, st->i - start);
    st->prev = PREV_OTHER;
}

static bool word_eq(const char *p, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

static bool word_in(const char *p, size_t n, const char *const *list, size_t k)
{
    for (size_t j = 0; j < k; j++) {
        if (word_eq(p, n, list[j])) {
            return true;
        }
    }
    return false;
}

static void identifier(struct scan *st)
{
    static const char *const dml[] = {"select", "insert", "update", "delete",
                                      "merge",  "with",   "values", "table"};
    static const char *const prec[] = {"float", "current_time", "current_timestamp", "localtime",
                                       "localtimestamp"};
    size_t start = st->i;
    while (st->i < st->len && is_ident_cont(at(st, st->i))) {
        st->i++;
    }
    const char *p = st->s + start;
    size_t n = st->i - start;
    /* The word lists are read only where they can matter: at a statement's start, and for
     * names that begin as the precision names do. */
    token(st, !st->stmt_started && word_in(p, n, dml, sizeof dml / sizeof dml[0]));
    if (n == 6 && word_eq(p, n, "atomic")) {
        st->unsure = true; /* BEGIN ATOMIC ... END holds ';' */
        st->fold = false;
    }
    put(st, p, n);
    st->lookahead = word_eq(p, n, "not") || word_eq(p, n, "nulls") || word_eq(p, n, "with");
    unsigned char c0 = (unsigned char)(p[0] | 0x20);
    bool maybe_prec = n >= 5 && (c0 == 'f' || c0 == 'c' || c0 == 'l');
    st->prev = maybe_prec && word_in(p, n, prec, sizeof prec / sizeof prec[0]) ? PREV_PREC_NAME
                                                                               : PREV_OTHER;
}

/* integer, decimal, real; an integer above INT32_MAX is a float (process_integer_literal).
 * Trailing junk (integer_junk, decimal_junk, real_junk, realfail, decimalfail): no key. */
static void number(struct scan *st)
{
    size_t start = st->i;
    size_t i = start;
    bool is_float = false;
    while (is_digit(at(st, i))) {
        i++;
    }
    if (at(st, i) == '.') {
        if (at(st, i + 1) == '.' && i > start) {
            st->failed = true; /* decimalfail: 1.. */
            return;
        }
        is_float = true;
        i++;
        while (is_digit(at(st, i))) {
            i++;
        }
    }
    if (at(st, i) == 'e' || at(st, i) == 'E') {
        size_t e = i + 1;
        if (at(st, e) == '+' || at(st, e) == '-') {
            e++;
        }
        if (!is_digit(at(st, e))) {
            st->failed = true; /* realfail */
            return;
        }
        while (is_digit(at(st, e))) {
            e++;
        }
        is_float = true;
        i = e;
    }
    if (is_ident_cont(at(st, i))) {
        st->failed = true; /* trailing junk (or a '$' after a number) */
        return;
    }
    if (!is_float) {
        size_t z = start;
        while (z + 1 < i && st->s[z] == '0') {
            z++;
        }
        size_t nd = i - z;
        is_float = nd > 10 || (nd == 10 && memcmp(st->s + z, "2147483647", 10) > 0);
    }
    bool verbatim = !is_float && (st->prev == PREV_PREC_PAREN || st->prev == PREV_BRACKET);
    st->i = i;
    constant(st, start, is_float ? SQL_KEY_FLOAT : SQL_KEY_INT, verbatim);
}

/* $n (param), $tag$...$tag$ (dolqdelim); anything else after '$': no key. */
static void dollar(struct scan *st)
{
    size_t start = st->i;
    size_t i = start + 1;
    if (is_digit(at(st, i))) {
        while (is_digit(at(st, i))) {
            i++;
        }
        if (is_ident_cont(at(st, i))) {
            st->failed = true; /* param_junk */
            return;
        }
        st->i = i;
        token(st, false);
        put(st, st->s + start, i - start);
        st->prev = PREV_OTHER;
        return;
    }
    if (is_ident_start(at(st, i))) {
        while (is_dolq_cont(at(st, i))) {
            i++;
        }
    }
    if (at(st, i) != '$') {
        st->failed = true; /* dolqfailed */
        return;
    }
    size_t taglen = i + 1 - start;
    const char *body = st->s + i + 1;
    size_t rest = st->len - (i + 1);
    const char *end = NULL;
    for (size_t k = 0; k + taglen <= rest && end == NULL; k++) {
        if (body[k] == '$' && memcmp(body + k, st->s + start, taglen) == 0) {
            end = body + k; /* the first occurrence of the tag ends the string */
        }
    }
    if (end == NULL) {
        st->failed = true; /* unterminated */
        return;
    }
    struct word w = {.n = 0};
    for (const char *p = body; p < end; p++) {
        word_add(&w, (unsigned char)*p);
    }
    st->i = (size_t)(end - st->s) + taglen;
    constant(st, start, SQL_KEY_STRING, st->uescape || word_is_clock(&w));
}

/* One nested slash-star comment from st->i (xc: xcstart nests, xcstop closes). */
static void block_comment(struct scan *st)
{
    size_t i = st->i + 2;
    int depth = 1;
    while (depth > 0) {
        if (i + 1 >= st->len) {
            st->failed = true; /* unterminated */
            return;
        }
        if (at(st, i) == '/' && at(st, i + 1) == '*') {
            depth++;
            i += 2;
        } else if (at(st, i) == '*' && at(st, i + 1) == '/') {
            depth--;
            i += 2;
        } else {
            i++;
        }
    }
    st->i = i;
}

static void op_or_self(struct scan *st, unsigned char c)
{
    if (c == ';' && !st->stmt_started) {
        separate(st); /* an empty statement is none */
    } else {
        token(st, c == '(');
    }
    put(st, st->s + st->i, 1);
    st->i++;
    if (c == '(') {
        st->depth++;
        st->prev = st->prev == PREV_PREC_NAME ? PREV_PREC_PAREN : PREV_OTHER;
        return;
    }
    st->prev = c == '[' ? PREV_BRACKET : PREV_OTHER;
    if (c == ')' && st->depth > 0) {
        st->depth--;
    } else if (c == ';') {
        if (st->depth > 0) {
            st->unsure = true; /* CREATE RULE ... DO (a; b) */
            st->fold = false;
        } else {
            st->stmt_started = false;
        }
    }
}

/* One token (or whitespace / comment) at st->i. */
static void step(struct scan *st)
{
    unsigned char c = at(st, st->i);
    unsigned char c1 = at(st, st->i + 1);
    size_t start = st->i;
    if (is_space(c)) {
        st->space_pending = true;
        st->i++;
    } else if (c == '-' && c1 == '-') {
        while (st->i < st->len && !is_newline(at(st, st->i))) {
            st->i++;
        }
        st->space_pending = true;
        st->failed = st->failed || st->uescape || st->lookahead; /* see below */
    } else if (c == '/' && c1 == '*') {
        block_comment(st);
        st->space_pending = true;
        /* libpg_query's lexer hands comments to its grammar's one-token lookahead (base_yylex:
         * NOT before BETWEEN/IN/LIKE/ILIKE/SIMILAR, NULLS before FIRST/LAST, WITH before
         * TIME/ORDINALITY, a U& token before UESCAPE), so a comment there is a syntax error to
         * it (the server accepts it): folded to a space it would share a key with a text that
         * parses. */
        st->failed = st->failed || st->uescape || st->lookahead;
    } else if (c == '\'') {
        string_const(st, start, start, Q_STD, SQL_KEY_STRING);
    } else if ((c == 'e' || c == 'E') && c1 == '\'') {
        string_const(st, start, start + 1, Q_ESC, SQL_KEY_STRING);
    } else if ((c == 'n' || c == 'N') && c1 == '\'') {
        string_const(st, start, start + 1, Q_STD, SQL_KEY_NCHAR);
    } else if ((c == 'b' || c == 'B') && c1 == '\'') {
        string_const(st, start, start + 1, Q_BITS, SQL_KEY_BITS);
    } else if ((c == 'x' || c == 'X') && c1 == '\'') {
        string_const(st, start, start + 1, Q_BITS, SQL_KEY_HEX);
    } else if ((c == 'u' || c == 'U') && c1 == '&' && at(st, start + 2) == '\'') {
        string_const(st, start, start + 2, Q_UNI, SQL_KEY_STRING);
    } else if ((c == 'u' || c == 'U') && c1 == '&' && at(st, start + 2) == '"') {
        st->uescape = true;
        quoted_ident(st, start, start + 2);
    } else if (c == '"') {
        quoted_ident(st, start, start);
    } else if (is_ident_start(c)) {
        identifier(st);
    } else if (is_digit(c) || (c == '.' && is_digit(c1))) {
        number(st);
    } else if (c == '$') {
        dollar(st);
    } else if (is_op_or_self(c)) {
        op_or_self(st, c);
    } else {
        st->failed = true; /* NUL, control bytes, '\', '{', '}', DEL */
    }
}

long sql_key(const char *sql, size_t len, bool scs, char *out, size_t cap,
             struct sql_key_info *info)
{
    if (info != NULL) {
        info->nstatements = 0;
        info->nconsts = 0;
    }
    if (sql == NULL || out == NULL || cap == 0 || memchr(sql, '\0', len) != NULL) {
        return -1;
    }
    struct scan st = {.s = sql, .len = len, .out = out, .cap = cap, .scs = scs, .info = info};
    while (st.i < len && !st.failed) {
        step(&st);
    }
    if (st.failed) {
        return -1;
    }
    out[st.o] = '\0';
    if (info != NULL) {
        info->nstatements = st.unsure ? -1 : st.nstatements;
    }
    return (long)st.o;
}
