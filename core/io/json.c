/* json.c — the strict JSON parser behind file headers; see json.h. */
#include "json.h"
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JSON_MAX_DEPTH = 64, ARENA_BLOCK = 64 * 1024 };

/* ---- arena -------------------------------------------------------------- */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

struct grove_json_doc {
    arena_block *blocks;
    grove_json *root;
};

static void *arena_alloc(grove_json_doc *doc, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    arena_block *b = doc->blocks;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = doc->blocks;
        doc->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

void grove_json_free(grove_json_doc *doc)
{
    if (!doc) return;
    arena_block *b = doc->blocks;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(doc);
}

const grove_json *grove_json_root(const grove_json_doc *doc) { return doc ? doc->root : NULL; }

/* ---- UTF-8 -------------------------------------------------------------- */
/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

bool gv_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(u + i, len - i);
        if (!n) return false;
        i += n;
    }
    return true;
}

static size_t utf8_put(char *out, unsigned cp)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- parser --------------------------------------------------------------- */
typedef struct parser {
    const char *start, *p, *end;
    grove_json_doc *doc;
    char *err;
    size_t errlen;
    int depth;
    int32_t flags;
} parser;

/* Records the first (innermost) error with the byte offset where it occurred. */
static void vfail(parser *ps, const char *fmt, va_list ap)
{
    if (ps->err[0]) return;
    int n = snprintf(ps->err, ps->errlen, "at byte %zu: ", (size_t)(ps->p - ps->start));
    if (n < 0 || (size_t)n >= ps->errlen) return;
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
}

__attribute__((format(printf, 2, 3))) static void *fail(parser *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ps, fmt, ap);
    va_end(ap);
    return NULL;
}

__attribute__((format(printf, 2, 3))) static bool fail_false(parser *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ps, fmt, ap);
    va_end(ap);
    return false;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static grove_json *new_node(parser *ps, grove_json_kind kind)
{
    grove_json *v = arena_alloc(ps->doc, sizeof *v);
    if (!v) return fail(ps, "out of memory");
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

/* Parses a string at ps->p (which is '"'); *out receives the decoded bytes. */
static bool parse_string(parser *ps, const char **out, int64_t *outlen)
{
    const char *s = ps->p + 1;
    /* Decoding never lengthens a string: escapes shrink, raw bytes copy. */
    const char *q = s;
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) return fail_false(ps, "unterminated string");
    char *buf = arena_alloc(ps->doc, (size_t)(q - s) + 1);
    if (!buf) return fail_false(ps, "out of memory");
    size_t n = 0;
    ps->p = s;
    while (*ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) return fail_false(ps, "control character 0x%02x inside a string (must be escaped)", c);
        if (c >= 0x80) {
            size_t k = utf8_seq((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
            if (!k) return fail_false(ps, "invalid UTF-8 inside a string");
            memcpy(buf + n, ps->p, k);
            n += k;
            ps->p += k;
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            ps->p++;
            continue;
        }
        char e = ps->p[1];
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            int cp = ps->end - ps->p >= 6 ? hex4(ps->p + 2) : -1;
            if (cp < 0) return fail_false(ps, "\\u must be followed by four hex digits");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_false(ps, "unpaired low surrogate \\u%04x", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = ps->end - ps->p >= 12 && ps->p[6] == '\\' && ps->p[7] == 'u' ? hex4(ps->p + 8) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail_false(ps, "high surrogate \\u%04x is not followed by a low surrogate", cp);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                ps->p += 6;
            }
            /* Names are C strings, so an embedded NUL cannot be represented. */
            if (cp == 0) return fail_false(ps, "\\u0000 inside a string is not supported");
            n += utf8_put(buf + n, (unsigned)cp);
            ps->p += 6;
            continue;
        }
        default:
            return fail_false(ps, "invalid escape '\\%c'", e);
        }
        ps->p += 2;
    }
    buf[n] = 0;
    ps->p++; /* closing quote */
    *out = buf;
    *outlen = (int64_t)n;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static grove_json *parse_number(parser *ps)
{
    const char *s = ps->p, *q = s;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || !is_digit(*q)) return fail(ps, "invalid number");
    if (*q == '0') {
        q++;
        if (q < ps->end && is_digit(*q)) return fail(ps, "number with a leading zero");
    } else {
        while (q < ps->end && is_digit(*q)) q++;
    }
    bool integral = true;
    if (q < ps->end && *q == '.') {
        integral = false;
        q++;
        if (q >= ps->end || !is_digit(*q)) {
            ps->p = q;
            return fail(ps, "expected a digit after '.'");
        }
        while (q < ps->end && is_digit(*q)) q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || !is_digit(*q)) {
            ps->p = q;
            return fail(ps, "expected a digit in the exponent");
        }
        while (q < ps->end && is_digit(*q)) q++;
    }
    grove_json *v = new_node(ps, GROVE_JSON_INT);
    if (!v) return NULL;
    if (integral) {
        bool neg = *s == '-';
        uint64_t acc = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (const char *d = s + neg; d < q && integral; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (acc > (limit - digit) / 10) integral = false;
            else acc = acc * 10 + digit;
        }
        if (integral) {
            v->integer = neg ? (int64_t)(0 - acc) : (int64_t)acc;
            ps->p = q;
            return v;
        }
    }
    /* A fraction, an exponent, or an integer beyond int64. */
    char *tmp = arena_alloc(ps->doc, (size_t)(q - s) + 1);
    if (!tmp) return fail(ps, "out of memory");
    memcpy(tmp, s, (size_t)(q - s));
    tmp[q - s] = 0;
    v->kind = GROVE_JSON_NUMBER;
    v->number = strtod(tmp, NULL);
    ps->p = q;
    return v;
}

static bool literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return false;
    ps->p += n;
    return true;
}

static grove_json *parse_value(parser *ps);

/* Parses '[' ... ']' or '{' ... '}' at ps->p. */
static grove_json *parse_container(parser *ps, bool object)
{
    if (++ps->depth > JSON_MAX_DEPTH) return fail(ps, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    grove_json *v = new_node(ps, object ? GROVE_JSON_OBJECT : GROVE_JSON_ARRAY);
    if (!v) return NULL;
    char close = object ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    grove_json **tail = &v->first;
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        const char *key = NULL;
        if (object) {
            int64_t klen;
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a string key in an object");
            if (!parse_string(ps, &key, &klen)) return NULL;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':' after an object key");
            ps->p++;
            skip_ws(ps);
        }
        grove_json *child = parse_value(ps);
        if (!child) return NULL;
        child->key = key;
        *tail = child;
        tail = &child->next;
        v->count++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            return v;
        }
        return fail(ps, object ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array");
    }
}

static grove_json *parse_value(parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input, expected a value");
    char c = *ps->p;
    if (c == '{') return parse_container(ps, true);
    if (c == '[') return parse_container(ps, false);
    if (c == '"') {
        grove_json *v = new_node(ps, GROVE_JSON_STRING);
        if (!v || !parse_string(ps, &v->str, &v->len)) return NULL;
        return v;
    }
    /* Python's json module writes these for non-finite floats (diffusers'
     * scheduler configs hold -Infinity); accepted only when asked for. */
    if (ps->flags & GROVE_JSON_ALLOW_NAN) {
        double special = 0;
        bool found = true;
        if (literal(ps, "NaN")) special = __builtin_nan("");
        else if (literal(ps, "Infinity")) special = __builtin_inf();
        else if (literal(ps, "-Infinity")) special = -__builtin_inf();
        else found = false;
        if (found) {
            grove_json *v = new_node(ps, GROVE_JSON_NUMBER);
            if (v) v->number = special;
            return v;
        }
    }
    if (c == '-' || is_digit(c)) return parse_number(ps);
    bool truth = literal(ps, "true");
    if (truth || literal(ps, "false")) {
        grove_json *v = new_node(ps, GROVE_JSON_BOOL);
        if (v) v->boolean = truth;
        return v;
    }
    if (literal(ps, "null")) return new_node(ps, GROVE_JSON_NULL);
    if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7F) return fail(ps, "unexpected character '%c'", c);
    return fail(ps, "unexpected byte 0x%02x", (unsigned char)c);
}

grove_json_doc *gv_json_parse(const char *text, size_t len, int32_t flags, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = 0;
    grove_json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    parser ps = {.start = text, .p = text, .end = text + len, .doc = doc, .err = err, .errlen = errlen, .flags = flags};
    doc->root = parse_value(&ps);
    if (doc->root) {
        skip_ws(&ps);
        if (ps.p < ps.end) fail(&ps, "unexpected data after the JSON value");
    }
    if (!doc->root || ps.p < ps.end) {
        if (!err[0]) snprintf(err, errlen, "invalid JSON");
        grove_json_free(doc);
        return NULL;
    }
    return doc;
}

const grove_json *gv_json_get(const grove_json *obj, const char *key)
{
    if (!obj || obj->kind != GROVE_JSON_OBJECT) return NULL;
    for (const grove_json *c = obj->first; c; c = c->next)
        if (strcmp(c->key, key) == 0) return c;
    return NULL;
}

const char *gv_json_kind_name(grove_json_kind kind)
{
    static const char *names[] = {"null", "a boolean", "an integer", "a number", "a string", "an array", "an object"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

grove_json_doc *grove_json_parse(const char *text, int64_t len, int32_t flags)
{
    if (!text || len < 0) return gv_fail_null("json: expected text and a length >= 0");
    if (flags & ~(int32_t)GROVE_JSON_ALLOW_NAN) return gv_fail_null("json: unknown flags 0x%x", (unsigned)flags);
    char err[256];
    grove_json_doc *doc = gv_json_parse(text, (size_t)len, flags, err, sizeof err);
    if (!doc) return gv_fail_null("%s", err);
    return doc;
}
