/* protocol/pin_values.c: what the row's JSON cannot carry to the secondary, and how the
 * secondary's statement gets it back (see pin.h, pin_shape's extras).
 *
 * A pinned row travels as to_json(t.*), read back on the secondary by json_populate_record. Two
 * kinds of values do not survive that trip:
 *   - json and jsonb: a JSON null stored in the column prints as null in the row's JSON, as an SQL
 *     NULL does; json_populate_record makes both SQL NULL;
 *   - arrays whose lower bounds are not 1 ('[0:1]={1,2}'): JSON arrays have no bounds.
 * For a table with such columns among those the secondary stores or matches on, the primary also
 * returns the row's text (record_out), whose fields tell an SQL NULL (an empty field) from any
 * value and print an array's bounds. pgdual sends each row to the secondary as [row, extras]:
 * extras holds, by column name, the primary's text of each non-NULL json/jsonb value (their text
 * depends on no setting), from which the secondary's statement takes the column. A row holding an
 * array with bounds is not pinned (PIN_EBOUNDS: counted): only an array's text carries them, and
 * its elements' text depends on each server's settings (DateStyle, TimeZone, extra_float_digits),
 * which may differ. The row's text is only read here, never sent to the secondary.
 * Every shape (not a WITH query's) also keeps the kinds of the table's columns, which the primary
 * checks at each execution (a prepared statement outlives an ALTER ... TYPE): a row whose table's
 * kinds changed is stale. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pin.h"
#include "protocol/pin_internal.h"

/* "pjbap": t's columns' kinds (pin_shape's kinds), or NULL when not known. */
static int plan_kinds(struct pin_shape *sh, const struct pin_table *t)
{
    static const char letter[] = {[PIN_VALUE_PLAIN] = 'p',
                                  [PIN_VALUE_JSON] = 'j',
                                  [PIN_VALUE_JSONB] = 'b',
                                  [PIN_VALUE_ARRAY] = 'a'};
    if (!t->kinds_known || t->ncols == 0) {
        return 0;
    }
    sh->kinds = malloc((size_t)t->ncols + 1);
    if (!sh->kinds) {
        return PIN_ENOMEM;
    }
    for (int i = 0; i < t->ncols; i++) {
        sh->kinds[i] = letter[t->cols[i].kind];
    }
    sh->kinds[t->ncols] = '\0';
    return 0;
}

/* Column c, field `field` of the row, at the end of *list (*n of them). 0 or PIN_ENOMEM. */
static int append_extra(struct pin_extra **list, int *n, int field, const struct pin_column *c)
{
    struct pin_extra *e = realloc(*list, ((size_t)*n + 1) * sizeof(*e));
    if (!e) {
        return PIN_ENOMEM;
    }
    *list = e;
    e = &e[(*n)++];
    e->field = field;
    e->kind = c->kind;
    pin_copy_name(e->name, c->name);
    return 0;
}

/* A WITH query's shape: its json/jsonb columns, checked row by row (pin.h, json_cols). */
static int plan_json_cols(struct pin_shape *sh, const struct pin_stmt *st,
                          const struct pin_table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        const struct pin_column *c = &t->cols[i];
        if ((c->kind != PIN_VALUE_JSON && c->kind != PIN_VALUE_JSONB) ||
            !pin_column_returned(st, c)) {
            continue;
        }
        if (append_extra(&sh->json_cols, &sh->njson_cols, i, c) < 0) {
            return PIN_ENOMEM;
        }
    }
    sh->nfields = t->ncols;
    return 0;
}

int pin_values_plan(struct pin_shape *sh, const struct pin_stmt *st, const struct pin_table *t)
{
    if (st->in_cte) {
        return plan_json_cols(sh, st, t);
    }
    sh->nfields = t->ncols;
    for (int i = 0; i < t->ncols; i++) {
        const struct pin_column *c = &t->cols[i];
        if (c->kind == PIN_VALUE_PLAIN || !pin_column_returned(st, c)) {
            continue;
        }
        if (append_extra(&sh->extras, &sh->nextras, i, c) < 0) {
            return PIN_ENOMEM;
        }
    }
    /* Every shape: a column retyped since a prepared statement's Parse (ALTER ... TYPE, or
     * search_path now finding another table of that name) may now be json or an array, whose
     * values the plain JSON form does not carry (review 22). */
    return plan_kinds(sh, t);
}

static const struct pin_extra *extra_of(const struct pin_shape *sh, const char *col)
{
    for (int i = 0; i < sh->nextras; i++) {
        if (strcmp(sh->extras[i].name, col) == 0) {
            return &sh->extras[i];
        }
    }
    return NULL;
}

/* ("pgdual_e"."r" -> 1 ->> E'col'): the column's entry in the row's extras, as text */
static void put_extra_text(struct wbuf *b, const char *col)
{
    pin_put_str(b, "(\"pgdual_e\".\"r\" -> 1 ->> ");
    pin_put_escaped_literal(b, col);
    pin_put_str(b, ")");
}

static void put_row_column(struct wbuf *b, const char *col)
{
    pin_put_str(b, "\"pgdual_v\".");
    pin_put_ident(b, col);
}

void pin_values_put_expr(struct wbuf *b, const struct pin_shape *sh, const char *col)
{
    const struct pin_extra *e = extra_of(sh, col);
    if (!e || e->kind == PIN_VALUE_ARRAY) {
        put_row_column(b, col); /* an array with bounds never gets here (PIN_EBOUNDS) */
        return;
    }
    /* the primary's text; none: an SQL NULL (the assignment to the column checks a domain) */
    put_extra_text(b, col);
    pin_put_str(b, e->kind == PIN_VALUE_JSONB ? "::pg_catalog.jsonb" : "::pg_catalog.json");
}

/* ---- the row's text -------------------------------------------------------------------------- */

/* One field of record_out's text: NULL (empty), or a value, quoted ("..." with "" and \ escapes)
 * or not. */
struct record_field {
    bool null, quoted;
    const uint8_t *at; /* between the quotes, if quoted */
    size_t len;
};

/* The field starting at s[*i] (just past '(' or ','); *i ends on the ',' or ')' after it. */
static int read_field(const uint8_t *s, size_t len, size_t *i, struct record_field *f)
{
    size_t k = *i;
    memset(f, 0, sizeof(*f));
    if (k < len && s[k] == '"') {
        f->quoted = true;
        f->at = s + k + 1;
        for (k++; k < len; k++) {
            if (s[k] == '\\') {
                k++;
            } else if (s[k] == '"') {
                if (k + 1 < len && s[k + 1] == '"') {
                    k++;
                    continue;
                }
                break;
            }
        }
        if (k >= len) {
            return PIN_EPROTO;
        }
        f->len = (size_t)(s + k - f->at);
        k++;
    } else {
        f->at = s + k;
        while (k < len && s[k] != ',' && s[k] != ')') {
            k++;
        }
        f->len = (size_t)(s + k - f->at);
        f->null = f->len == 0;
    }
    if (k >= len || (s[k] != ',' && s[k] != ')')) {
        return PIN_EPROTO;
    }
    *i = k;
    return 0;
}

/* Byte j of the field's value (after unquoting) into *c; returns the index of the next byte,
 * or 0 at the end. */
static size_t field_byte(const struct record_field *f, size_t j, uint8_t *c)
{
    if (j >= f->len) {
        return 0;
    }
    if (f->quoted && (f->at[j] == '\\' || (f->at[j] == '"' && j + 1 < f->len))) {
        j++; /* \x is x; "" is " */
    }
    *c = f->at[j];
    return j + 1;
}

/* The field's value as a JSON string. */
static void put_json_string(struct wbuf *b, const struct record_field *f)
{
    static const char hex[] = "0123456789abcdef";
    wbuf_put_u8(b, '"');
    uint8_t c;
    for (size_t j = field_byte(f, 0, &c); j; j = field_byte(f, j, &c)) {
        if (c == '"' || c == '\\') {
            wbuf_put_u8(b, '\\');
            wbuf_put_u8(b, c);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            wbuf_put_bytes(b, esc, sizeof(esc));
        } else {
            wbuf_put_u8(b, c);
        }
    }
    wbuf_put_u8(b, '"');
}

/* The length of the array bounds ("[0:1][1:2]=") the field's value starts with, or 0. */
static size_t bounds_len(const struct record_field *f)
{
    uint8_t c = 0;
    size_t j = field_byte(f, 0, &c), n = 0;
    if (!j || c != '[') {
        return 0;
    }
    n = 1;
    int state = 0; /* 0: lower bound's sign or digits, 1: its digits, 2: upper's, 3: after ']' */
    for (; (j = field_byte(f, j, &c)) != 0; n++) {
        bool digit = c >= '0' && c <= '9';
        if (state == 3) {
            if (c == '=') {
                return n + 1;
            }
            if (c != '[') {
                return 0;
            }
            state = 0;
        } else if (digit || ((c == '-' || c == '+') && (state == 0 || state == 2))) {
            state = state == 0 ? 1 : state == 2 ? 2 : state;
        } else if (c == ':' && state == 1) {
            state = 2;
        } else if (c == ']' && state == 2) {
            state = 3;
        } else {
            return 0;
        }
    }
    return 0;
}

/* A column name as a JSON string (the names are PostgreSQL identifiers: no NUL). */
static void put_json_name(struct wbuf *b, const char *name)
{
    struct record_field f = {.at = (const uint8_t *)name, .len = strlen(name)};
    put_json_string(b, &f);
}

int pin_values_add(struct wbuf *rows, const struct pin_shape *sh, const uint8_t *json,
                   size_t json_len, const uint8_t *rec, size_t rec_len)
{
    if (rec_len < 2 || rec[0] != '(' || rec[rec_len - 1] != ')') {
        return PIN_EPROTO;
    }
    size_t start = rows->len; /* on a malformed text, rows is left as it was */
    wbuf_put_u8(rows, rows->len == 0 ? '[' : ',');
    wbuf_put_u8(rows, '[');
    wbuf_put_bytes(rows, json, json_len);
    pin_put_str(rows, ",{");
    size_t i = 0;
    int next = 0, written = 0;
    bool bounded = false;
    for (int field = 0; field < sh->nfields; field++) {
        struct record_field f;
        i++; /* past '(' or ',' */
        if (read_field(rec, rec_len, &i, &f) < 0 || (rec[i] == ')') != (field == sh->nfields - 1)) {
            rows->len = start;
            return PIN_EPROTO;
        }
        if (next >= sh->nextras || sh->extras[next].field != field) {
            continue;
        }
        const struct pin_extra *e = &sh->extras[next++];
        if (e->kind == PIN_VALUE_ARRAY && !f.null && bounds_len(&f) > 0) {
            bounded = true; /* the whole text is read first: a malformed one is PIN_EPROTO */
        }
        if (f.null || e->kind == PIN_VALUE_ARRAY) {
            continue; /* the row's JSON carries it */
        }
        pin_put_str(rows, written++ ? "," : "");
        put_json_name(rows, e->name);
        wbuf_put_u8(rows, ':');
        put_json_string(rows, &f);
    }
    if (i != rec_len - 1 || next != sh->nextras) {
        rows->len = start;
        return PIN_EPROTO;
    }
    if (bounded) {
        rows->len = start;
        return PIN_EBOUNDS;
    }
    pin_put_str(rows, "}]");
    return rows->failed ? PIN_ENOMEM : 0;
}

/* ---- a WITH query's rows read back from pgdual's table ------------------------------------ */

static size_t skip_json_space(const uint8_t *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
        i++;
    }
    return i;
}

/* The JSON string at s[i] (its opening quote) unescaped into out: the index past it, or 0. Read
 * are the escapes PostgreSQL's escape_json writes (\" \\ \b \f \n \r \t, \u00XX for other
 * control characters) and \/; any other \u: 0 (not a text pgdual reads). */
static size_t json_string(const uint8_t *s, size_t len, size_t i, struct wbuf *out)
{
    static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    if (i >= len || s[i] != '"') {
        return 0;
    }
    for (i++; i < len; i++) {
        if (s[i] == '"') {
            return i + 1;
        }
        if (s[i] != '\\') {
            wbuf_put_u8(out, s[i]);
            continue;
        }
        if (++i >= len) {
            return 0;
        }
        const char *m = s[i] ? strchr(simple, s[i]) : NULL;
        if (m && (m - simple) % 2 == 0) {
            wbuf_put_u8(out, (uint8_t)m[1]);
            continue;
        }
        unsigned v = 0;
        for (int k = 1; s[i] == 'u' && k <= 4 && i + k < len; k++) {
            uint8_t h = s[i + k];
            int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
            v = d < 0 ? 0x10000u : v * 16 + (unsigned)d;
        }
        if (s[i] != 'u' || i + 4 >= len || v == 0 || v >= 0x20) {
            return 0;
        }
        wbuf_put_u8(out, (uint8_t)v);
        i += 4;
    }
    return 0;
}

/* Is the field's value, JSON white space aside, the JSON null? */
static bool field_is_json_null(const struct record_field *f)
{
    char word[5];
    size_t n = 0;
    uint8_t c;
    for (size_t j = field_byte(f, 0, &c); j; j = field_byte(f, j, &c)) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue; /* only around the word: "nu ll" is not JSON, the server never stores it */
        }
        if (n >= 4) {
            return false;
        }
        word[n++] = (char)c;
    }
    word[n] = '\0';
    return strcmp(word, "null") == 0;
}

/* Does the secondary's json_populate_record keep a json column's text as old holds it? Only an
 * object's or array's, and without white space around it: it unescapes a top-level string
 * ("a\u00e9" becomes "aé") and drops the space around a scalar. (jsonb: old prints its own
 * normal form, which new reads back the same.) */
static bool json_text_kept(const struct record_field *f)
{
    uint8_t first = 0, last = 0, c;
    for (size_t j = field_byte(f, 0, &c); j; j = field_byte(f, j, &c)) {
        first = first ? first : c;
        last = c;
    }
    return (first == '{' && last == '}') || (first == '[' && last == ']');
}

/* The fields of the row's text rec: does one of sh's json_cols hold a value the secondary would
 * not store as old holds it (a JSON null; a json column's scalar or spaced text)? */
static int text_json_null(const struct pin_shape *sh, const uint8_t *rec, size_t len, bool *out)
{
    if (len < 2 || rec[0] != '(' || rec[len - 1] != ')') {
        return PIN_EPROTO;
    }
    size_t i = 0;
    int next = 0;
    for (int field = 0; field < sh->nfields; field++) {
        struct record_field f;
        i++;
        if (read_field(rec, len, &i, &f) < 0 || (rec[i] == ')') != (field == sh->nfields - 1)) {
            return PIN_EPROTO;
        }
        if (next < sh->njson_cols && sh->json_cols[next].field == field) {
            bool kept =
                f.null || (!field_is_json_null(&f) &&
                           (sh->json_cols[next].kind != PIN_VALUE_JSON || json_text_kept(&f)));
            *out = *out || !kept;
            next++;
        }
    }
    return i == len - 1 && next == sh->njson_cols ? 0 : PIN_EPROTO;
}

int pin_values_readback(const struct pin_shape *sh, const uint8_t *r, size_t len,
                        const uint8_t **row, size_t *row_len, bool *json_null)
{
    *json_null = false;
    if (!sh->njson_cols) {
        *row = r;
        *row_len = len;
        return len > 0 && r[0] == '{' ? 0 : PIN_EPROTO;
    }
    size_t at = len > 0 && r[0] == '[' ? skip_json_space(r, len, 1) : len;
    size_t end = at < len && r[at] == '{' ? pin_json_value_end(r, len, at) : 0;
    if (end == 0) {
        return PIN_EPROTO;
    }
    *row = r + at;
    *row_len = end - at;
    at = skip_json_space(r, len, end);
    if (at >= len || r[at] != ',') {
        return PIN_EPROTO;
    }
    struct wbuf text;
    wbuf_init(&text);
    size_t after = json_string(r, len, skip_json_space(r, len, at + 1), &text);
    int rc =
        after == 0 || skip_json_space(r, len, after) != len - 1 || r[len - 1] != ']' || text.failed
            ? PIN_EPROTO
            : text_json_null(sh, text.data, text.len, json_null);
    wbuf_free(&text);
    return rc;
}
