/*
 * json.h — a small strict JSON parser for file headers (safetensors).
 *
 * It accepts exactly RFC 8259 JSON: one value, optionally surrounded by
 * whitespace, nothing after it. Strings are checked to be valid UTF-8 and
 * their escapes (\uXXXX with surrogate pairs included) decoded; numbers
 * without fraction or exponent that fit in int64 become GROVE_JSON_INT, every
 * other number GROVE_JSON_NUMBER (kept as a double), so a caller can say "not an
 * integer" instead of "invalid JSON". Nesting is limited, so a hostile header
 * cannot exhaust the stack.
 *
 * Every node and string lives in one arena owned by the grove_json_doc; freeing
 * the document frees everything at once, which keeps error paths leak-free.
 */
#ifndef GROVE_IO_JSON_H
#define GROVE_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grove.h"

/* The node and document types are public (grove.h), so Lua reads a parsed
 * tree through the FFI without a call per field. */
/* Parses text[0..len). Returns NULL on failure with a message such as
 * "at byte 17: expected ':' after an object key" in err. flags: 0 for strict
 * RFC 8259, or GROVE_JSON_ALLOW_NAN. grove_json_root and grove_json_free
 * (grove.h) read and free the result. */
grove_json_doc *gv_json_parse(const char *text, size_t len, int32_t flags, char *err, size_t errlen);

/* The first member of an object with the given key, or NULL. */
const grove_json *gv_json_get(const grove_json *obj, const char *key);
const char *gv_json_kind_name(grove_json_kind kind);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool gv_utf8_valid(const char *s, size_t len);

#endif /* GROVE_IO_JSON_H */
