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
 * depends on no setting) and the bounds of each array that has any ("[0:1]="); the secondary's
 * statement takes a json/jsonb column from its text and puts the bounds back in front of the
 * array's own text, read in by the column's type. The row's text is only read here, never sent
 * to the secondary: dates and intervals in it follow the primary's DateStyle and IntervalStyle. */
#include <stdlib.h>
#include <string.h>

#include "protocol/pin.h"
#include "protocol/pin_internal.h"

bool pin_values_needed(const struct pin_stmt *st, const struct pin_table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        if (t->cols[i].kind != PIN_VALUE_PLAIN && pin_column_returned(st, &t->cols[i])) {
            return true;
        }
    }
    return false;
}

int pin_values_plan(struct pin_shape *sh, const struct pin_stmt *st, const struct pin_table *t)
{
    sh->nfields = t->ncols;
    for (int i = 0; i < t->ncols; i++) {
        const struct pin_column *c = &t->cols[i];
        if (c->kind == PIN_VALUE_PLAIN || !pin_column_returned(st, c)) {
            continue;
        }
        struct pin_extra *e = realloc(sh->extras, ((size_t)sh->nextras + 1) * sizeof(*e));
        if (!e) {
            return PIN_ENOMEM;
        }
        sh->extras = e;
        e = &sh->extras[sh->nextras++];
        e->field = i;
        e->kind = c->kind;
        pin_copy_name(e->name, c->name);
    }
    return 0;
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
    if (!e) {
        put_row_column(b, col);
        return;
    }
    if (e->kind != PIN_VALUE_ARRAY) {
        /* the primary's text; none: an SQL NULL */
        put_extra_text(b, col);
        pin_put_str(b, e->kind == PIN_VALUE_JSONB ? "::pg_catalog.jsonb" : "::pg_catalog.json");
        return;
    }
    /* The bounds in front of the array's own text on the secondary, read in as the column's
     * type: json_populate_record reads a JSON string into an array column with the type's input
     * function (a domain's checks included); the row's other columns come from the row as it is. */
    pin_put_str(b, "CASE WHEN ");
    put_extra_text(b, col);
    pin_put_str(b, " IS NULL THEN ");
    put_row_column(b, col);
    pin_put_str(b, " ELSE (pg_catalog.json_populate_record(\"pgdual_v\".*, "
                   "pg_catalog.json_build_object(");
    pin_put_escaped_literal(b, col);
    pin_put_str(b, ", ");
    put_extra_text(b, col);
    pin_put_str(b, " OPERATOR(pg_catalog.||) ");
    put_row_column(b, col);
    pin_put_str(b, "::pg_catalog.text))).");
    pin_put_ident(b, col);
    pin_put_str(b, " END");
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

/* The field's first n bytes (after unquoting) as a JSON string: bounds are digits, signs, [ : ]
 * and =, so nothing needs escaping. */
static void put_bounds(struct wbuf *b, const struct record_field *f, size_t n)
{
    wbuf_put_u8(b, '"');
    uint8_t c;
    size_t j = field_byte(f, 0, &c);
    for (size_t k = 0; k < n && j; k++, j = field_byte(f, j, &c)) {
        wbuf_put_u8(b, c);
    }
    wbuf_put_u8(b, '"');
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
        size_t bounds = e->kind == PIN_VALUE_ARRAY && !f.null ? bounds_len(&f) : 0;
        if (f.null || (e->kind == PIN_VALUE_ARRAY && bounds == 0)) {
            continue; /* the row's JSON carries it */
        }
        pin_put_str(rows, written++ ? "," : "");
        put_json_name(rows, e->name);
        wbuf_put_u8(rows, ':');
        if (bounds) {
            put_bounds(rows, &f, bounds);
        } else {
            put_json_string(rows, &f);
        }
    }
    if (i != rec_len - 1 || next != sh->nextras) {
        rows->len = start;
        return PIN_EPROTO;
    }
    pin_put_str(rows, "}]");
    return rows->failed ? PIN_ENOMEM : 0;
}
