/* protocol/pin_json.c: the column names of a row as to_json prints it. A pinned statement's shape
 * is made from the catalog as pgdual read it; a prepared statement outlives that reading, and
 * DDL of another session (ALTER TABLE ... ADD or DROP COLUMN) changes what the primary's
 * to_json(t.*) returns without telling this session. The secondary's statement, which stores
 * only the columns the shape names, would then let new make up the value of a column old's
 * row holds. Comparing the row's keys with the shape's columns sees it (see pin.h). */
#include <stdio.h>

#include "protocol/pin.h"
#include "protocol/pin_internal.h"

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME  1099511628211ull

static uint64_t mix(uint64_t h, uint8_t c)
{
    return (h ^ c) * FNV_PRIME;
}

/* The bytes of name as escape_json writes them between the quotes, into h. */
static uint64_t mix_escaped(uint64_t h, const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char esc[8];
        const char *put = NULL;
        switch (*p) {
        case '"':
            put = "\\\"";
            break;
        case '\\':
            put = "\\\\";
            break;
        case '\b':
            put = "\\b";
            break;
        case '\f':
            put = "\\f";
            break;
        case '\n':
            put = "\\n";
            break;
        case '\r':
            put = "\\r";
            break;
        case '\t':
            put = "\\t";
            break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                put = esc;
            }
        }
        if (!put) {
            h = mix(h, *p);
            continue;
        }
        for (; *put; put++) {
            h = mix(h, (uint8_t)*put);
        }
    }
    return mix(h, 0); /* the end of one name */
}

uint64_t pin_columns_hash(const struct pin_table *t)
{
    uint64_t h = FNV_OFFSET;
    for (int i = 0; i < t->ncols; i++) {
        h = mix_escaped(h, t->cols[i].name);
    }
    return h;
}

/* The end of the JSON string whose opening quote is at s[i] (the index past its closing quote),
 * or 0 when it does not end. */
static size_t string_end(const uint8_t *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return 0;
}

/* The end of the value starting at s[i] (a string, an object or array, or a scalar). 0: none. */
static size_t value_end(const uint8_t *s, size_t len, size_t i)
{
    int depth = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == '"') {
            i = string_end(s, len, i);
            if (i == 0) {
                return 0;
            }
            if (depth == 0) {
                return i;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                return i; /* a scalar ends at its object's close */
            }
            if (--depth == 0) {
                return i + 1;
            }
        } else if (c == ',' && depth == 0) {
            return i;
        }
        i++;
    }
    return 0;
}

size_t pin_json_value_end(const uint8_t *s, size_t len, size_t i)
{
    return value_end(s, len, i);
}

static size_t skip_space(const uint8_t *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
        i++;
    }
    return i;
}

int pin_json_keys_hash(const uint8_t *json, size_t len, uint64_t *hash)
{
    uint64_t h = FNV_OFFSET;
    size_t i = skip_space(json, len, 0);
    if (i >= len || json[i] != '{') {
        return PIN_EPROTO;
    }
    i = skip_space(json, len, i + 1);
    if (i < len && json[i] == '}') {
        *hash = h;
        return 0;
    }
    while (i < len) {
        if (json[i] != '"') {
            return PIN_EPROTO;
        }
        size_t end = string_end(json, len, i);
        if (end == 0) {
            return PIN_EPROTO;
        }
        for (size_t k = i + 1; k + 1 < end; k++) {
            h = mix(h, json[k]);
        }
        h = mix(h, 0);
        i = skip_space(json, len, end);
        if (i >= len || json[i] != ':') {
            return PIN_EPROTO;
        }
        i = value_end(json, len, skip_space(json, len, i + 1));
        if (i == 0) {
            return PIN_EPROTO;
        }
        i = skip_space(json, len, i);
        if (i < len && json[i] == '}') {
            *hash = h;
            return skip_space(json, len, i + 1) == len ? 0 : PIN_EPROTO;
        }
        if (i >= len || json[i] != ',') {
            return PIN_EPROTO;
        }
        i = skip_space(json, len, i + 1);
    }
    return PIN_EPROTO;
}
