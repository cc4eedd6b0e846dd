/*
 * safetensors.c — the checkpoint format of huggingface/safetensors.
 *
 * Layout: u64 little-endian N, N bytes of UTF-8 JSON header, then the data
 * buffer. The header maps each tensor name to {"dtype", "shape",
 * "data_offsets": [begin, end]} (offsets relative to the buffer) and may hold
 * "__metadata__": {string: string}.
 *
 * Reading maps the file (read-only, private) and validates the whole header
 * up front, as the reference implementation does: tensors must tile the
 * buffer exactly, without gaps, overlaps or trailing bytes. Afterwards a get
 * is a single memcpy from the mapping. Writing goes to path + ".tmp", is
 * synced, and is then renamed over path, so a failed or interrupted save never
 * destroys an existing checkpoint.
 */
#include "internal.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; grove copies it verbatim");

/* The reference implementation refuses larger headers. */
#define ST_MAX_HEADER 100000000ull
#define ST_METADATA_KEY "__metadata__"

static const struct {
    const char *name;
    int32_t dtype;
} st_dtypes[] = {
    {"F32", GROVE_F32}, {"F16", GROVE_F16}, {"BF16", GROVE_BF16}, {"U8", GROVE_U8},
    {"I8", GROVE_I8},   {"I32", GROVE_I32}, {"I64", GROVE_I64},
};
enum { ST_NDTYPES = sizeof st_dtypes / sizeof st_dtypes[0] };

static const char *st_dtype_name(int32_t dtype)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (st_dtypes[i].dtype == dtype) return st_dtypes[i].name;
    return NULL;
}

typedef struct st_entry {
    const char *name;   /* points into the parsed header */
    int32_t dtype;
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    int64_t begin, end; /* byte offsets into the data buffer */
} st_entry;

struct grove_safetensors {
    char *path;
    unsigned char *map;
    size_t map_len;
    const unsigned char *buffer; /* the data buffer, after the header */
    int64_t buffer_len;
    gv_json_doc *doc;            /* owns every name, key and value string */
    int64_t count;
    st_entry *entries;           /* in header order */
    st_entry **by_name;          /* sorted by name, for lookups */
    int64_t nmeta;
    const gv_json **meta;        /* string members of __metadata__, in header order */
};

void grove_safetensors_close(grove_safetensors *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    gv_json_free(f->doc);
    free(f->entries);
    free(f->by_name);
    free(f->meta);
    free(f->path);
    free(f);
}

/* ---- header validation ---------------------------------------------------- */
static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static int cmp_entry_offsets(const void *a, const void *b)
{
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_json_key(const void *a, const void *b)
{
    return strcmp((*(const gv_json *const *)a)->key, (*(const gv_json *const *)b)->key);
}

/* One required field of a tensor entry, present once and of the given kind. */
static const gv_json *st_field(const char *path, const gv_json *obj, const char *tensor, const char *field,
                               gv_json_kind kind)
{
    const gv_json *found = NULL;
    for (const gv_json *c = obj->first; c; c = c->next) {
        if (strcmp(c->key, field) != 0) continue;
        if (found) return gv_fail_null("safetensors: %s: tensor '%s': field '%s' appears twice", path, tensor, field);
        found = c;
    }
    if (!found) return gv_fail_null("safetensors: %s: tensor '%s': missing field '%s'", path, tensor, field);
    if (found->kind != kind)
        return gv_fail_null("safetensors: %s: tensor '%s': field '%s' is %s, expected %s", path, tensor, field,
                            gv_json_kind_name(found->kind), gv_json_kind_name(kind));
    return found;
}

static bool st_parse_entry(const char *path, const gv_json *v, int64_t buffer_len, st_entry *e)
{
    const char *name = v->key;
    e->name = name;
    if (v->kind != GV_JSON_OBJECT) {
        gv_fail("safetensors: %s: tensor '%s': entry is %s, expected an object with dtype, shape and data_offsets",
                path, name, gv_json_kind_name(v->kind));
        return false;
    }
    const gv_json *dt = st_field(path, v, name, "dtype", GV_JSON_STRING);
    const gv_json *sh = dt ? st_field(path, v, name, "shape", GV_JSON_ARRAY) : NULL;
    const gv_json *off = sh ? st_field(path, v, name, "data_offsets", GV_JSON_ARRAY) : NULL;
    if (!off) return false;

    e->dtype = -1;
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(dt->str, st_dtypes[i].name) == 0) e->dtype = st_dtypes[i].dtype;
    if (e->dtype < 0) {
        gv_fail("safetensors: %s: tensor '%s': unsupported dtype '%s' (grove reads F32, F16, BF16, U8, I8, I32, I64)",
                path, name, dt->str);
        return false;
    }

    if (sh->count > GROVE_MAX_DIMS) {
        gv_fail("safetensors: %s: tensor '%s': shape has %lld dimensions; grove supports at most %d", path, name,
                (long long)sh->count, GROVE_MAX_DIMS);
        return false;
    }
    e->ndim = (int32_t)sh->count;
    int64_t numel = 1;
    int32_t d = 0;
    for (const gv_json *s = sh->first; s; s = s->next, d++) {
        if (s->kind != GV_JSON_INT) {
            gv_fail("safetensors: %s: tensor '%s': shape entry %d is %s, not an integer", path, name, d,
                    gv_json_kind_name(s->kind));
            return false;
        }
        if (s->integer < 0) {
            gv_fail("safetensors: %s: tensor '%s': shape entry %d is negative (%lld)", path, name, d,
                    (long long)s->integer);
            return false;
        }
        e->shape[d] = s->integer;
        /* Beyond 2^50 elements no tensor fits anywhere; this also keeps
         * numel * element size from overflowing. */
        if (s->integer > 0 && numel > ((int64_t)1 << 50) / s->integer) {
            gv_fail("safetensors: %s: tensor '%s': shape %s has too many elements", path, name,
                    gv_dims_str(e->ndim, e->shape));
            return false;
        }
        numel *= s->integer;
    }

    const gv_json *b = off->first, *en = b ? b->next : NULL;
    if (off->count != 2 || b->kind != GV_JSON_INT || en->kind != GV_JSON_INT) {
        gv_fail("safetensors: %s: tensor '%s': data_offsets must be [begin, end] with two integers", path, name);
        return false;
    }
    e->begin = b->integer;
    e->end = en->integer;
    if (e->begin < 0 || e->begin > e->end) {
        gv_fail("safetensors: %s: tensor '%s': data_offsets [%lld, %lld] must satisfy 0 <= begin <= end", path, name,
                (long long)e->begin, (long long)e->end);
        return false;
    }
    if (e->end > buffer_len) {
        gv_fail("safetensors: %s: tensor '%s': data_offsets [%lld, %lld] end beyond the data buffer (%lld bytes)",
                path, name, (long long)e->begin, (long long)e->end, (long long)buffer_len);
        return false;
    }
    int64_t want = numel * grove_dtype_size(e->dtype);
    if (e->end - e->begin != want) {
        gv_fail("safetensors: %s: tensor '%s': data_offsets [%lld, %lld] span %lld bytes, but %s shape %s needs %lld",
                path, name, (long long)e->begin, (long long)e->end, (long long)(e->end - e->begin), dt->str,
                gv_dims_str(e->ndim, e->shape), (long long)want);
        return false;
    }
    return true;
}

static bool st_parse_metadata(grove_safetensors *f, const gv_json *m)
{
    if (m->kind != GV_JSON_OBJECT) {
        gv_fail("safetensors: %s: __metadata__ is %s, expected an object of strings", f->path,
                gv_json_kind_name(m->kind));
        return false;
    }
    f->meta = malloc((size_t)(m->count ? m->count : 1) * sizeof *f->meta);
    if (!f->meta) {
        gv_fail("safetensors: %s: out of memory", f->path);
        return false;
    }
    for (const gv_json *c = m->first; c; c = c->next) {
        if (c->kind != GV_JSON_STRING) {
            gv_fail("safetensors: %s: metadata value for key '%s' is %s, not a string", f->path, c->key,
                    gv_json_kind_name(c->kind));
            return false;
        }
        f->meta[f->nmeta++] = c;
    }
    const gv_json **sorted = malloc((size_t)(f->nmeta ? f->nmeta : 1) * sizeof *sorted);
    if (!sorted) {
        gv_fail("safetensors: %s: out of memory", f->path);
        return false;
    }
    if (f->nmeta) memcpy(sorted, f->meta, (size_t)f->nmeta * sizeof *sorted);
    qsort(sorted, (size_t)f->nmeta, sizeof *sorted, cmp_json_key);
    for (int64_t i = 1; i < f->nmeta; i++) {
        if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0) {
            gv_fail("safetensors: %s: duplicate metadata key '%s'", f->path, sorted[i]->key);
            free(sorted);
            return false;
        }
    }
    free(sorted);
    return true;
}

/* Tensors must tile [0, buffer_len) exactly: sorted by offsets, each begins
 * where the previous ended, and the last ends at the end of the buffer. */
static bool st_check_coverage(grove_safetensors *f)
{
    st_entry **by_off = malloc((size_t)(f->count ? f->count : 1) * sizeof *by_off);
    if (!by_off) {
        gv_fail("safetensors: %s: out of memory", f->path);
        return false;
    }
    for (int64_t i = 0; i < f->count; i++) by_off[i] = &f->entries[i];
    qsort(by_off, (size_t)f->count, sizeof *by_off, cmp_entry_offsets);
    int64_t covered = 0;
    const st_entry *prev = NULL;
    bool ok = true;
    for (int64_t i = 0; i < f->count && ok; i++) {
        const st_entry *e = by_off[i];
        if (e->begin < covered) {
            gv_fail("safetensors: %s: tensor '%s' (bytes [%lld, %lld)) overlaps tensor '%s' (bytes [%lld, %lld))",
                    f->path, e->name, (long long)e->begin, (long long)e->end, prev->name, (long long)prev->begin,
                    (long long)prev->end);
            ok = false;
        } else if (e->begin > covered) {
            gv_fail("safetensors: %s: gap in the data buffer: bytes [%lld, %lld) belong to no tensor (before '%s')",
                    f->path, (long long)covered, (long long)e->begin, e->name);
            ok = false;
        }
        covered = e->end;
        prev = e;
    }
    free(by_off);
    if (ok && covered != f->buffer_len) {
        gv_fail("safetensors: %s: %lld trailing bytes after the last tensor (data buffer is %lld bytes, tensors "
                "cover %lld)",
                f->path, (long long)(f->buffer_len - covered), (long long)f->buffer_len, (long long)covered);
        ok = false;
    }
    return ok;
}

static bool st_parse_header(grove_safetensors *f, const char *text, size_t len)
{
    char err[256];
    f->doc = gv_json_parse(text, len, err, sizeof err);
    if (!f->doc) {
        gv_fail("safetensors: %s: header is not valid JSON: %s", f->path, err);
        return false;
    }
    const gv_json *root = gv_json_root(f->doc);
    if (root->kind != GV_JSON_OBJECT) {
        gv_fail("safetensors: %s: header is %s, expected a JSON object", f->path, gv_json_kind_name(root->kind));
        return false;
    }
    f->entries = calloc((size_t)(root->count ? root->count : 1), sizeof *f->entries);
    f->by_name = malloc((size_t)(root->count ? root->count : 1) * sizeof *f->by_name);
    if (!f->entries || !f->by_name) {
        gv_fail("safetensors: %s: out of memory", f->path);
        return false;
    }
    const gv_json *meta = NULL;
    for (const gv_json *c = root->first; c; c = c->next) {
        if (strcmp(c->key, ST_METADATA_KEY) == 0) {
            if (meta) {
                gv_fail("safetensors: %s: __metadata__ appears twice", f->path);
                return false;
            }
            meta = c;
            continue;
        }
        st_entry *e = &f->entries[f->count];
        if (!st_parse_entry(f->path, c, f->buffer_len, e)) return false;
        f->by_name[f->count++] = e;
    }
    if (meta && !st_parse_metadata(f, meta)) return false;
    qsort(f->by_name, (size_t)f->count, sizeof *f->by_name, cmp_entry_name);
    for (int64_t i = 1; i < f->count; i++) {
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            gv_fail("safetensors: %s: duplicate tensor name '%s'", f->path, f->by_name[i]->name);
            return false;
        }
    }
    return st_check_coverage(f);
}

/* ---- reading ---------------------------------------------------------------- */
grove_safetensors *grove_safetensors_open(const char *path)
{
    if (!path) return gv_fail_null("safetensors: expected a path, got NULL");
    grove_safetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return gv_fail_null("safetensors: %s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        gv_fail("safetensors: %s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        gv_fail("safetensors: %s: cannot stat: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        gv_fail("safetensors: %s: not a regular file", path);
        close(fd);
        goto fail;
    }
    if (st.st_size == 0) {
        gv_fail("safetensors: %s: file is empty", path);
        close(fd);
        goto fail;
    }
    if (st.st_size < 8) {
        gv_fail("safetensors: %s: file is too short (%lld bytes) to hold the 8-byte header length", path,
                (long long)st.st_size);
        close(fd);
        goto fail;
    }
    f->map_len = (size_t)st.st_size;
    void *map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) {
        gv_fail("safetensors: %s: cannot map: %s", path, strerror(map_errno));
        goto fail;
    }
    f->map = map;

    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->map[i];
    uint64_t room = (uint64_t)st.st_size - 8;
    if (n > ST_MAX_HEADER) {
        gv_fail("safetensors: %s: header length %llu is absurd (more than %llu bytes; the file may not be "
                "safetensors)",
                path, (unsigned long long)n, ST_MAX_HEADER);
        goto fail;
    }
    if (n > room) {
        gv_fail("safetensors: %s: header length %llu is beyond the end of the file (%llu bytes follow the length)",
                path, (unsigned long long)n, (unsigned long long)room);
        goto fail;
    }
    f->buffer = f->map + 8 + n;
    f->buffer_len = (int64_t)(room - n);
    if (!st_parse_header(f, (const char *)f->map + 8, (size_t)n)) goto fail;
    return f;

fail:
    grove_safetensors_close(f);
    return NULL;
}

int64_t grove_safetensors_count(const grove_safetensors *f)
{
    if (!f) return gv_fail("safetensors: expected an open file, got NULL");
    return f->count;
}

const char *grove_safetensors_name(const grove_safetensors *f, int64_t i)
{
    if (!f || i < 0 || i >= f->count) return NULL;
    return f->entries[i].name;
}

static const st_entry *st_find(const grove_safetensors *f, const char *name)
{
    if (!f) return gv_fail_null("safetensors: expected an open file, got NULL");
    if (!name) return gv_fail_null("safetensors: %s: expected a tensor name, got NULL", f->path);
    int64_t lo = 0, hi = f->count;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return gv_fail_null("safetensors: %s: no tensor named '%s'", f->path, name);
}

grove_status grove_safetensors_info(const grove_safetensors *f, const char *name, int32_t *dtype, int32_t *ndim,
                                    int64_t *shape)
{
    const st_entry *e = st_find(f, name);
    if (!e) return -1;
    if (dtype) *dtype = e->dtype;
    if (ndim) *ndim = e->ndim;
    if (shape && e->ndim) memcpy(shape, e->shape, (size_t)e->ndim * sizeof *shape);
    return 0;
}

grove_tensor *grove_safetensors_get(const grove_safetensors *f, const char *name)
{
    const st_entry *e = st_find(f, name);
    if (!e) return NULL;
    grove_tensor *t = gv_empty(e->ndim, e->shape, e->dtype, GROVE_CPU);
    if (!t) return NULL;
    if (e->end > e->begin) memcpy(t->data, f->buffer + e->begin, (size_t)(e->end - e->begin));
    return t;
}

int64_t grove_safetensors_metadata_count(const grove_safetensors *f)
{
    if (!f) return gv_fail("safetensors: expected an open file, got NULL");
    return f->nmeta;
}

const char *grove_safetensors_metadata_key(const grove_safetensors *f, int64_t i)
{
    if (!f || i < 0 || i >= f->nmeta) return NULL;
    return f->meta[i]->key;
}

const char *grove_safetensors_metadata(const grove_safetensors *f, const char *key)
{
    if (!f || !key) return NULL;
    for (int64_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i]->key, key) == 0) return f->meta[i]->str;
    return NULL;
}

/* ---- writing ------------------------------------------------------------------ */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control characters escaped;
 * other bytes (valid UTF-8, checked by the caller) copied as they are. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Checks that n strings are present, valid UTF-8, (optionally) non-empty and unique. */
static bool check_strings(const char *path, const char *what, int64_t n, const char *const *s, bool nonempty)
{
    for (int64_t i = 0; i < n; i++) {
        if (!s[i]) {
            gv_fail("safetensors_save: %s: %s %lld is NULL", path, what, (long long)i);
            return false;
        }
        if (nonempty && !s[i][0]) {
            gv_fail("safetensors_save: %s: %s %lld is empty", path, what, (long long)i);
            return false;
        }
        if (!gv_utf8_valid(s[i], strlen(s[i]))) {
            gv_fail("safetensors_save: %s: %s %lld is not valid UTF-8", path, what, (long long)i);
            return false;
        }
    }
    const char **sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) {
        gv_fail("safetensors_save: %s: out of memory", path);
        return false;
    }
    if (n) memcpy(sorted, s, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_cstr);
    bool ok = true;
    for (int64_t i = 1; i < n && ok; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            gv_fail("safetensors_save: %s: duplicate %s '%s'", path, what, sorted[i]);
            ok = false;
        }
    }
    free(sorted);
    return ok;
}

static bool check_save_args(const char *path, int64_t n, const char *const *names, grove_tensor *const *tensors,
                            int64_t nmeta, const char *const *keys, const char *const *values)
{
    if (n < 0 || nmeta < 0) {
        gv_fail("safetensors_save: %s: negative count", path);
        return false;
    }
    if (n > 0 && (!names || !tensors)) {
        gv_fail("safetensors_save: %s: %lld tensors but no name or tensor array", path, (long long)n);
        return false;
    }
    if (nmeta > 0 && (!keys || !values)) {
        gv_fail("safetensors_save: %s: %lld metadata entries but no key or value array", path, (long long)nmeta);
        return false;
    }
    if (!check_strings(path, "tensor name", n, names, true)) return false;
    for (int64_t i = 0; i < n; i++) {
        if (strcmp(names[i], ST_METADATA_KEY) == 0) {
            gv_fail("safetensors_save: %s: '%s' is reserved and cannot name a tensor", path, ST_METADATA_KEY);
            return false;
        }
        const grove_tensor *t = tensors[i];
        if (!t) {
            gv_fail("safetensors_save: %s: tensor '%s' is NULL", path, names[i]);
            return false;
        }
        if (!t->storage) {
            gv_fail("safetensors_save: %s: tensor '%s' was freed", path, names[i]);
            return false;
        }
        if (t->device != GROVE_CPU) {
            gv_fail("safetensors_save: %s: tensor '%s' is on %s; copy it to the CPU first", path, names[i],
                    t->device == GROVE_CUDA ? "cuda" : "an unknown device");
            return false;
        }
        if (!st_dtype_name(t->dtype)) {
            gv_fail("safetensors_save: %s: tensor '%s' has unknown dtype %d", path, names[i], t->dtype);
            return false;
        }
    }
    if (!check_strings(path, "metadata key", nmeta, keys, false)) return false;
    for (int64_t i = 0; i < nmeta; i++) {
        if (!values[i]) {
            gv_fail("safetensors_save: %s: metadata value for key '%s' is NULL", path, keys[i]);
            return false;
        }
        if (!gv_utf8_valid(values[i], strlen(values[i]))) {
            gv_fail("safetensors_save: %s: metadata value for key '%s' is not valid UTF-8", path, keys[i]);
            return false;
        }
    }
    return true;
}

/* The header JSON padded with spaces so that the data buffer starts at a
 * multiple of 8 bytes, as the reference writer does. */
static bool build_header(sbuf *b, int64_t n, const char *const *names, grove_tensor *const *tensors,
                         int64_t nmeta, const char *const *keys, const char *const *values)
{
    sb_str(b, "{");
    bool first = true;
    if (nmeta > 0) {
        sb_str(b, "\"" ST_METADATA_KEY "\":{");
        for (int64_t i = 0; i < nmeta; i++) {
            if (i) sb_str(b, ",");
            sb_json_string(b, keys[i]);
            sb_str(b, ":");
            sb_json_string(b, values[i]);
        }
        sb_str(b, "}");
        first = false;
    }
    int64_t offset = 0;
    char num[64];
    for (int64_t i = 0; i < n; i++) {
        const grove_tensor *t = tensors[i];
        if (!first) sb_str(b, ",");
        first = false;
        sb_json_string(b, names[i]);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, st_dtype_name(t->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int32_t d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            sb_str(b, num);
        }
        int64_t bytes = grove_tensor_numel(t) * grove_dtype_size(t->dtype);
        snprintf(num, sizeof num, "],\"data_offsets\":[%lld,%lld]}", (long long)offset, (long long)(offset + bytes));
        sb_str(b, num);
        offset += bytes;
    }
    sb_str(b, "}");
    while (!b->oom && b->len % 8) sb_put(b, " ", 1);
    return !b->oom;
}

static bool write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* The directory part of path ("." when there is none), for messages and the
 * directory sync. */
static void dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, outlen, ".");
    else if (slash == path) snprintf(out, outlen, "/");
    else snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

grove_status grove_safetensors_save(const char *path, int64_t n, const char *const *names,
                                    grove_tensor *const *tensors, int64_t nmeta, const char *const *meta_keys,
                                    const char *const *meta_values)
{
    if (!path || !path[0]) return gv_fail("safetensors_save: expected a file path");
    if (!check_save_args(path, n, names, tensors, nmeta, meta_keys, meta_values)) return -1;

    sbuf header = {0};
    if (!build_header(&header, n, names, tensors, nmeta, meta_keys, meta_values)) {
        free(header.p);
        return gv_fail("safetensors_save: %s: out of memory building the header", path);
    }
    if (header.len > ST_MAX_HEADER) {
        free(header.p);
        return gv_fail("safetensors_save: %s: header would be %zu bytes, more than readers accept (%llu)", path,
                       header.len, ST_MAX_HEADER);
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(header.p);
        return gv_fail("safetensors_save: %s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    char dir[4096];
    dir_of(path, dir, sizeof dir);
    grove_status rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        if (errno == ENOENT) gv_fail("safetensors_save: %s: directory '%s' does not exist", path, dir);
        else gv_fail("safetensors_save: %s: cannot create %s: %s", path, tmp, strerror(errno));
        goto done; /* nothing was created, so nothing is removed */
    }

    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
    if (!write_all(fd, len8, 8) || !write_all(fd, header.p, header.len)) {
        gv_fail("safetensors_save: %s: cannot write %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) {
        grove_tensor *c = gv_contiguous_data(tensors[i]);
        if (!c) goto fail; /* error already set */
        size_t bytes = (size_t)(grove_tensor_numel(c) * grove_dtype_size(c->dtype));
        bool ok = write_all(fd, c->data, bytes);
        int werr = errno;
        grove_tensor_release(c);
        if (!ok) {
            gv_fail("safetensors_save: %s: cannot write %s: %s", path, tmp, strerror(werr));
            goto fail;
        }
    }
    if (fsync(fd) != 0) {
        gv_fail("safetensors_save: %s: cannot sync %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    int cerr = close(fd);
    fd = -1;
    if (cerr != 0) {
        gv_fail("safetensors_save: %s: cannot close %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        gv_fail("safetensors_save: %s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    /* Make the rename itself durable; a failure here loses nothing written. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
    goto done;

fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
done:
    free(tmp);
    free(header.p);
    return rc;
}
