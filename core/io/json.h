/*
 * json.h — a small strict JSON parser for file headers (safetensors).
 *
 * It accepts exactly RFC 8259 JSON: one value, optionally surrounded by
 * whitespace, nothing after it. Strings are checked to be valid UTF-8 and
 * their escapes (\uXXXX with surrogate pairs included) decoded; numbers
 * without fraction or exponent that fit in int64 become GV_JSON_INT, every
 * other number GV_JSON_NUMBER (kept as a double), so a caller can say "not an
 * integer" instead of "invalid JSON". Nesting is limited, so a hostile header
 * cannot exhaust the stack.
 *
 * Every node and string lives in one arena owned by the gv_json_doc; freeing
 * the document frees everything at once, which keeps error paths leak-free.
 */
#ifndef GROVE_IO_JSON_H
#define GROVE_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gv_json_kind {
    GV_JSON_NULL = 0,
    GV_JSON_BOOL,
    GV_JSON_INT,
    GV_JSON_NUMBER,
    GV_JSON_STRING,
    GV_JSON_ARRAY,
    GV_JSON_OBJECT
} gv_json_kind;

typedef struct gv_json gv_json;
struct gv_json {
    gv_json_kind kind;
    bool boolean;
    int64_t integer;     /* GV_JSON_INT */
    double number;       /* GV_JSON_NUMBER */
    const char *str;     /* GV_JSON_STRING: NUL-terminated, never contains NUL */
    size_t len;          /* GV_JSON_STRING: bytes, without the terminator */
    int64_t count;       /* GV_JSON_ARRAY / GV_JSON_OBJECT: number of children */
    gv_json *first;      /* first child, in document order */
    gv_json *next;       /* next sibling */
    const char *key;     /* member name when the parent is an object */
};

typedef struct gv_json_doc gv_json_doc;

/* Parses text[0..len). Returns NULL on failure with a message such as
 * "at byte 17: expected ':' after an object key" in err. */
gv_json_doc *gv_json_parse(const char *text, size_t len, char *err, size_t errlen);
const gv_json *gv_json_root(const gv_json_doc *doc);
void gv_json_free(gv_json_doc *doc);

/* The first member of an object with the given key, or NULL. */
const gv_json *gv_json_get(const gv_json *obj, const char *key);
const char *gv_json_kind_name(gv_json_kind kind);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool gv_utf8_valid(const char *s, size_t len);

#endif /* GROVE_IO_JSON_H */
