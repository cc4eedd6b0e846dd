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
 * is a single memcpy from the mapping. Writing is in safetensors_writer.c.
 */
#include "internal.h"
#include "json.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; grove copies it verbatim");

/* The file's dtypes. The first ST_NWRITABLE are grove's own and written as
 * they are; the rest are read only and converted by get: F64 to f32 (the
 * float64 reference outputs PyTorch writes), BOOL to u8 (its masks). */
static const struct {
    const char *name;
    int32_t dtype; /* what get returns */
    int32_t size;  /* bytes per element in the file */
} st_dtypes[] = {
    {"F32", GROVE_F32, 4}, {"F16", GROVE_F16, 2}, {"BF16", GROVE_BF16, 2}, {"U8", GROVE_U8, 1},
    {"I8", GROVE_I8, 1},   {"I32", GROVE_I32, 4}, {"I64", GROVE_I64, 8},  {"F64", GROVE_F32, 8},
    {"BOOL", GROVE_U8, 1},
};
enum { ST_NDTYPES = sizeof st_dtypes / sizeof st_dtypes[0], ST_NWRITABLE = 7, ST_F64 = 7 };

const char *gv_st_dtype_name(int32_t dtype)
{
    for (int i = 0; i < ST_NWRITABLE; i++)
        if (st_dtypes[i].dtype == dtype) return st_dtypes[i].name;
    return NULL;
}

typedef struct st_entry {
    const char *name;   /* points into the parsed header */
    int32_t dtype;      /* grove's dtype, as get returns it */
    int32_t stored;     /* index into st_dtypes: the file's dtype */
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
    grove_json_doc *doc;            /* owns every name, key and value string */
    int64_t count;
    st_entry *entries;           /* in header order */
    st_entry **by_name;          /* sorted by name, for lookups */
    int64_t nmeta;
    const grove_json **meta;        /* string members of __metadata__, in header order */
    int64_t undropped;              /* bytes copied out since the mapping's pages were last dropped */
};

void grove_safetensors_close(grove_safetensors *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    grove_json_free(f->doc);
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
    return strcmp((*(const grove_json *const *)a)->key, (*(const grove_json *const *)b)->key);
}

/* One required field of a tensor entry, present once and of the given kind. */
static const grove_json *st_field(const char *path, const grove_json *obj, const char *tensor, const char *field,
                               grove_json_kind kind)
{
    const grove_json *found = NULL;
    for (const grove_json *c = obj->first; c; c = c->next) {
        if (strcmp(c->key, field) != 0) continue;
        if (found) return gv_fail_null("safetensors: %s: tensor '%s': field '%s' appears twice", path, tensor, field);
        found = c;
    }
    if (!found) return gv_fail_null("safetensors: %s: tensor '%s': missing field '%s'", path, tensor, field);
    if (found->kind != (int32_t)kind)
        return gv_fail_null("safetensors: %s: tensor '%s': field '%s' is %s, expected %s", path, tensor, field,
                            gv_json_kind_name(found->kind), gv_json_kind_name(kind));
    return found;
}

static bool st_parse_entry(const char *path, const grove_json *v, int64_t buffer_len, st_entry *e)
{
    const char *name = v->key;
    e->name = name;
    if (v->kind != GROVE_JSON_OBJECT) {
        gv_fail("safetensors: %s: tensor '%s': entry is %s, expected an object with dtype, shape and data_offsets",
                path, name, gv_json_kind_name(v->kind));
        return false;
    }
    const grove_json *dt = st_field(path, v, name, "dtype", GROVE_JSON_STRING);
    const grove_json *sh = dt ? st_field(path, v, name, "shape", GROVE_JSON_ARRAY) : NULL;
    const grove_json *off = sh ? st_field(path, v, name, "data_offsets", GROVE_JSON_ARRAY) : NULL;
    if (!off) return false;

    e->dtype = -1;
    for (int i = 0; i < ST_NDTYPES; i++) {
        if (strcmp(dt->str, st_dtypes[i].name) == 0) {
            e->dtype = st_dtypes[i].dtype;
            e->stored = i;
        }
    }
    if (e->dtype < 0) {
        gv_fail("safetensors: %s: tensor '%s': unsupported dtype '%s' (grove reads F32, F16, BF16, U8, I8, I32, I64, "
                "and F64 as f32, BOOL as u8)",
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
    for (const grove_json *s = sh->first; s; s = s->next, d++) {
        if (s->kind != GROVE_JSON_INT) {
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

    const grove_json *b = off->first, *en = b ? b->next : NULL;
    if (off->count != 2 || b->kind != GROVE_JSON_INT || en->kind != GROVE_JSON_INT) {
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
    int64_t want = numel * st_dtypes[e->stored].size;
    if (e->end - e->begin != want) {
        gv_fail("safetensors: %s: tensor '%s': data_offsets [%lld, %lld] span %lld bytes, but %s shape %s needs %lld",
                path, name, (long long)e->begin, (long long)e->end, (long long)(e->end - e->begin), dt->str,
                gv_dims_str(e->ndim, e->shape), (long long)want);
        return false;
    }
    return true;
}

static bool st_parse_metadata(grove_safetensors *f, const grove_json *m)
{
    if (m->kind != GROVE_JSON_OBJECT) {
        gv_fail("safetensors: %s: __metadata__ is %s, expected an object of strings", f->path,
                gv_json_kind_name(m->kind));
        return false;
    }
    f->meta = malloc((size_t)(m->count ? m->count : 1) * sizeof *f->meta);
    if (!f->meta) {
        gv_fail("safetensors: %s: out of memory", f->path);
        return false;
    }
    for (const grove_json *c = m->first; c; c = c->next) {
        if (c->kind != GROVE_JSON_STRING) {
            gv_fail("safetensors: %s: metadata value for key '%s' is %s, not a string", f->path, c->key,
                    gv_json_kind_name(c->kind));
            return false;
        }
        f->meta[f->nmeta++] = c;
    }
    const grove_json **sorted = malloc((size_t)(f->nmeta ? f->nmeta : 1) * sizeof *sorted);
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
    f->doc = gv_json_parse(text, len, 0, err, sizeof err);
    if (!f->doc) {
        gv_fail("safetensors: %s: header is not valid JSON: %s", f->path, err);
        return false;
    }
    const grove_json *root = grove_json_root(f->doc);
    if (root->kind != GROVE_JSON_OBJECT) {
        gv_fail("safetensors: %s: header is %s, expected a JSON object", f->path, gv_json_kind_name(root->kind));
        return false;
    }
    f->entries = calloc((size_t)(root->count ? root->count : 1), sizeof *f->entries);
    f->by_name = malloc((size_t)(root->count ? root->count : 1) * sizeof *f->by_name);
    if (!f->entries || !f->by_name) {
        gv_fail("safetensors: %s: out of memory", f->path);
        return false;
    }
    const grove_json *meta = NULL;
    for (const grove_json *c = root->first; c; c = c->next) {
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

/* Unmaps the pages copied tensors came from. Otherwise every page read stays
 * resident in the mapping, and streaming a file larger than memory tensor by
 * tensor (checkpoint surgery) would hold the whole file. The mapping is
 * read-only, so a dropped page is simply read from the file again if it is
 * touched later. The whole mapping is dropped once every 8 MiB copied, not
 * each tensor's pages: each drop is a system call that flushes the TLBs of
 * every CPU the process runs on, and one per small tensor was most of the
 * time of reading a file of small tensors. */
#define DROP_EVERY ((int64_t)8 << 20)
static void st_drop_pages(const grove_safetensors *f, const st_entry *e)
{
    int64_t *undropped = (int64_t *)&f->undropped; /* bookkeeping, not the file's contents */
    if (__atomic_add_fetch(undropped, e->end - e->begin, __ATOMIC_RELAXED) < DROP_EVERY) return;
    __atomic_store_n(undropped, 0, __ATOMIC_RELAXED);
    (void)madvise(f->map, f->map_len, MADV_DONTNEED);
}

grove_tensor *grove_safetensors_get(const grove_safetensors *f, const char *name)
{
    const st_entry *e = st_find(f, name);
    if (!e) return NULL;
    grove_tensor *t = gv_empty(e->ndim, e->shape, e->dtype, GROVE_CPU);
    if (!t) return NULL;
    if (e->end > e->begin) {
        const unsigned char *src = f->buffer + e->begin;
        if (e->stored == ST_F64) {
            /* The buffer is only 8-byte aligned at its start; a tensor after
             * an odd-sized one is not, hence memcpy per element. */
            float *dst = t->data;
            int64_t n = (e->end - e->begin) / 8;
            for (int64_t i = 0; i < n; i++) {
                double x;
                memcpy(&x, src + 8 * i, sizeof x);
                dst[i] = (float)x;
            }
        } else {
            memcpy(t->data, src, (size_t)(e->end - e->begin));
        }
        st_drop_pages(f, e);
    }
    return t;
}

const char *grove_safetensors_stored_dtype(const grove_safetensors *f, const char *name)
{
    const st_entry *e = st_find(f, name);
    return e ? st_dtypes[e->stored].name : NULL;
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
