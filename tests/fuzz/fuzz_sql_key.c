/* tests/fuzz/fuzz_sql_key.c: differential fuzz target for protocol/sql_key.c. For an input text A
 * with a key, B is A with every folded constant replaced by another constant of the same kind
 * and form (variations picked from the input's bytes). Checks: key(B) == key(A); classify of A
 * and of B equal (every field, fingerprint included); when both parse, their pg_query_normalize
 * texts are equal but for constants (normalization leaves type modifiers such as varchar(10) in
 * place); the scanner's statement count is libpg_query's; a classify_cached hit for B
 * after A answers what classify_statement(B) answers. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/classify.h"
#include "protocol/sql_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_TEXT  4096 /* longer inputs are skipped: two parses per input */
#define FUZZ_MAX_CONST 64

struct picker {
    const uint8_t *data;
    size_t size;
    size_t k;
};

static unsigned pick(struct picker *p, unsigned n)
{
    unsigned v = p->size > 0 ? p->data[(p->k * 7 + 3) % p->size] : 0;
    p->k++;
    return (v + (unsigned)p->k) % n;
}

struct buf {
    char *b;
    size_t n;
    size_t cap;
};

static void add(struct buf *b, const char *s, size_t n)
{
    if (b->n + n < b->cap) {
        memcpy(b->b + b->n, s, n);
        b->n += n;
    }
}

static void adds(struct buf *b, const char *s)
{
    add(b, s, strlen(s));
}

static bool ident_cont(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80 ||
           (c >= '0' && c <= '9') || c == '$';
}

/* String contents that are no clock word and hold no backslash. */
static const char *const contents[] = {"",  "a",          "it''s",  "  spaced  ", "x\ny",
                                       "0", "2147483648", "select", "here ;",     "''"};
static const char *const bits[] = {"", "0", "101", "1111000"};
static const char *const hexes[] = {"", "f", "00ff", "DEAD"};
static const char *const ints[] = {"0", "7", "42", "2147483647", "000123", "65536"};

/* A constant of c's kind, in the same form. prev/next: the bytes around it in the input. */
static void vary(struct buf *b, struct picker *p, const struct sql_key_const *c, const char *src,
                 unsigned char prev, unsigned char next)
{
    const char *orig = src + c->off;
    switch (c->kind) {
    case SQL_KEY_INT:
        adds(b, ints[pick(p, sizeof ints / sizeof ints[0])]);
        return;
    case SQL_KEY_FLOAT: {
        /* After an identifier byte, a digit or '.', only ".5"-like forms stay one token; before
         * '.', no form may end in '.' or be all digits (it would swallow the '.'). */
        static const char *const dot[] = {".5", ".25e3", ".0", ".1E-2"};
        static const char *const any[] = {"1.5",         "1e10", "2.5E-3",
                                          "99999999999", "3.",   "2147483648"};
        if (ident_cont(prev) || prev == '.') {
            adds(b, dot[pick(p, sizeof dot / sizeof dot[0])]);
        } else {
            unsigned n = next == '.' ? 3 : sizeof any / sizeof any[0];
            adds(b, any[pick(p, n)]);
        }
        return;
    }
    case SQL_KEY_BITS:
        add(b, orig, 2); /* B' or b': normalized texts keep the letter as written */
        adds(b, bits[pick(p, sizeof bits / sizeof bits[0])]);
        adds(b, "'");
        return;
    case SQL_KEY_HEX:
        add(b, orig, 2);
        adds(b, hexes[pick(p, sizeof hexes / sizeof hexes[0])]);
        adds(b, "'");
        return;
    default:
        break;
    }
    const char *content = contents[pick(p, sizeof contents / sizeof contents[0])];
    if (c->kind == SQL_KEY_NCHAR) {
        add(b, orig, 2);
        adds(b, content);
        adds(b, "'");
    } else if (orig[0] == '$') {
        const char *tag = pick(p, 2) ? "$q$" : "$$";
        adds(b, tag);
        adds(b, content);
        adds(b, tag);
    } else {
        add(b, orig, orig[0] == '\'' ? 1 : 2); /* ' or E' / e' */
        adds(b, content);
        adds(b, "'");
    }
}

/* Keys equal, or abort. */
static void same_key(const char *a, long alen, const char *b, long blen)
{
    if (alen != blen || memcmp(a, b, (size_t)alen) != 0) {
        abort();
    }
}

/* s with every run of digits as one '0' (into a malloc'd string). */
static char *digits_folded(const char *s)
{
    char *o = malloc(strlen(s) + 1);
    if (o == NULL) {
        abort();
    }
    size_t n = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (n == 0 || o[n - 1] != '0' || i == 0 || s[i - 1] < '0' || s[i - 1] > '9') {
                o[n++] = '0';
            }
        } else {
            o[n++] = s[i];
        }
    }
    o[n] = '\0';
    return o;
}

/* s with a space after each $n the normalizer glued to what follows ("$4FROM"). A '$' inside a
 * name ("b$5$x", one identifier) is no parameter. */
static char *params_apart(const char *s)
{
    size_t len = strlen(s);
    char *o = malloc(2 * len + 1);
    if (o == NULL) {
        abort();
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        bool in_name = i > 0 && ident_cont((unsigned char)s[i - 1]);
        o[n++] = s[i++];
        if (s[i - 1] == '$' && !in_name && s[i] >= '0' && s[i] <= '9') {
            while (s[i] >= '0' && s[i] <= '9') {
                o[n++] = s[i++];
            }
            if (s[i] != '\0' && ident_cont((unsigned char)s[i])) {
                o[n++] = ' ';
            }
        }
    }
    o[n] = '\0';
    return o;
}

/* The key of s with every statement's constants folded (when it has one), digits folded. */
static char *fold_constants(const char *s)
{
    char *t = params_apart(s);
    size_t len = strlen(t);
    char *k = malloc(SQL_KEY_CAP(len));
    if (k == NULL) {
        abort();
    }
    struct sql_key_info info = {.fold_all = true};
    char *f = digits_folded(sql_key(t, len, true, k, SQL_KEY_CAP(len), &info) >= 0 ? k : t);
    free(k);
    free(t);
    return f;
}

/* The normalized texts of A and B (both parse) are equal but for constants: normalization leaves
 * type modifiers (varchar(10), and f('a', 1.5) in f('a', 1.5) 'x') in place, and libpg_query's
 * normalizer makes odd texts of some inputs ("$81e+3" of "SET x = +1e+3", "SELECT$1" of
 * "SELECT'a'", "a + $142" of "a + - -42"). */
static void check_normalized(const char *a, const char *b)
{
    char *na = classify_normalize(a);
    char *nb = classify_normalize(b);
    if ((na == NULL) != (nb == NULL)) {
        abort();
    }
    /* libpg_query numbers its parameters after the text's highest $n: past INT32_MAX they wrap
     * to "$-2147483648", which no lexer reads as a parameter, so the texts cannot be folded. */
    bool wrapped = na != NULL && (strstr(na, "$-") != NULL || strstr(nb, "$-") != NULL);
    if (na != NULL && !wrapped && strcmp(na, nb) != 0) {
        char *fa = fold_constants(na), *fb = fold_constants(nb);
        if (strcmp(fa, fb) != 0) {
            abort();
        }
        free(fa);
        free(fb);
    }
    free(na);
    free(nb);
}

/* B from A (key ka, constants in info) and the checks; kb is a scratch key buffer of cap. */
static void check_variant(const uint8_t *data, size_t size, const char *a, const char *ka,
                          long alen, const struct sql_key_info *info, char *kb, size_t cap,
                          struct buf *b)
{
    static struct classify_cache *cache; /* reachable until exit: not a leak */
    if (cache == NULL && (cache = classify_cache_new(4)) == NULL) {
        abort();
    }
    struct picker p = {.data = data, .size = size};
    size_t at = 0;
    for (size_t i = 0; i < info->nconsts; i++) {
        const struct sql_key_const *c = &info->consts[i];
        add(b, a + at, c->off - at);
        unsigned char prev = c->off > 0 ? (unsigned char)a[c->off - 1] : ' ';
        unsigned char next = (unsigned char)a[c->off + c->len];
        vary(b, &p, c, a, prev, next);
        at = c->off + c->len;
    }
    add(b, a + at, size - at);
    b->b[b->n] = '\0';
    long blen = sql_key(b->b, b->n, true, kb, cap, NULL);
    if (blen < 0) {
        abort();
    }
    same_key(ka, alen, kb, blen);

    struct classify_result ra, rb, rc;
    if (classify_statement(a, NULL, &ra) != 0 || classify_statement(b->b, NULL, &rb) != 0) {
        return; /* no memory: nothing to compare */
    }
    if (!classify_result_equal(&ra, &rb)) {
        abort();
    }
    if (!ra.parse_error && info->nstatements >= 0 && info->nstatements != ra.nstatements) {
        abort();
    }
    if (!ra.parse_error) {
        check_normalized(a, b->b);
    }
    if (classify_cached(cache, a, NULL, &rc) == 0 && classify_cached(cache, b->b, NULL, &rc) == 0 &&
        !classify_result_equal(&rc, &rb)) {
        abort();
    }
}

/* C from A with each run of blanks replaced by other blanks or a comment (chosen from the input):
 * when the key stays the same, the classification must too. A run inside a quoted name or a
 * string changes the key, and the pair is not compared. (A review found this way that a comment
 * next to UESCAPE made libpg_query fail on one text of a key.) */
static void check_blanks(const uint8_t *data, size_t size, const char *a, const char *ka, long alen,
                         char *kc, size_t cap, struct buf *c)
{
    static const char *const blanks[] = {" ", "\n", "/**/", " /* c */ ", "--c\n", "\t\r\n"};
    struct picker p = {.data = data, .size = size, .k = 5};
    c->n = 0;
    for (size_t i = 0; i < size;) {
        if (a[i] == ' ' || a[i] == '\t' || a[i] == '\n') {
            while (i < size && (a[i] == ' ' || a[i] == '\t' || a[i] == '\n')) {
                i++;
            }
            adds(c, blanks[pick(&p, sizeof blanks / sizeof blanks[0])]);
        } else {
            add(c, a + i, 1);
            i++;
        }
    }
    c->b[c->n] = '\0';
    long clen = sql_key(c->b, c->n, true, kc, cap, NULL);
    if (clen != alen || memcmp(ka, kc, (size_t)alen) != 0) {
        return;
    }
    struct classify_result ra, rc;
    if (classify_statement(a, NULL, &ra) == 0 && classify_statement(c->b, NULL, &rc) == 0 &&
        !classify_result_equal(&ra, &rc)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_TEXT) {
        return 0;
    }
    size_t cap = SQL_KEY_CAP(size) + 64;
    char *a = malloc(size + 1), *ka = malloc(cap), *kb = malloc(cap), *kc = malloc(cap);
    struct buf b = {.b = malloc(size * 4 + 256), .cap = size * 4 + 256};
    if (a == NULL || ka == NULL || kb == NULL || kc == NULL || b.b == NULL) {
        abort();
    }
    memcpy(a, data, size);
    a[size] = '\0';
    struct sql_key_const consts[FUZZ_MAX_CONST];
    struct sql_key_info info = {.consts = consts, .consts_cap = FUZZ_MAX_CONST};
    long alen = sql_key(a, size, true, ka, cap, &info);
    /* With standard_conforming_strings off only backslashes lex otherwise. */
    long olen = sql_key(a, size, false, kc, cap, NULL);
    if (memchr(a, '\\', size) == NULL &&
        ((alen < 0) != (olen < 0) || (alen >= 0 && (alen != olen || memcmp(ka, kc, alen) != 0)))) {
        abort();
    }
    if (alen >= 0 && ((size_t)alen >= SQL_KEY_CAP(size) || strlen(ka) != (size_t)alen)) {
        abort();
    }
    if (alen >= 0 && info.nconsts <= FUZZ_MAX_CONST) {
        check_variant(data, size, a, ka, alen, &info, kb, cap, &b);
    }
    if (alen >= 0) {
        check_blanks(data, size, a, ka, alen, kb, cap, &b);
    }
    free(a);
    free(ka);
    free(kb);
    free(kc);
    free(b.b);
    return 0;
}
