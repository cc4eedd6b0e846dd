/*
 * safetensors_writer.c — writing safetensors files, whole or streamed.
 *
 * The streaming writer fixes the header (every name, dtype and shape, and the
 * metadata) when it opens, then takes the tensors' data one at a time in
 * header order, so a file far larger than memory can be written while only
 * one tensor is held (checkpoint surgery: `grove grow`). grove_safetensors_save
 * is the same writer fed from a list of tensors.
 *
 * The data goes to path + ".tmp" (file_atomic.h); finish syncs it and renames
 * it over path, and every failure (or an abort) removes the temporary, so an interrupted
 * write never destroys or half-replaces an existing file. The header is
 * compact JSON, metadata first, tensors in the given order with contiguous
 * offsets, padded with spaces so the data buffer starts at a multiple of 8
 * bytes, as the reference writer does.
 */
#include "file_atomic.h"
#include "gpu.h"
#include "json.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_out {
    char *name;
    int32_t dtype;
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    int64_t bytes;
} st_out;

struct grove_safetensors_writer {
    const char *op; /* names the API in messages: safetensors_save or safetensors_writer */
    char *path;          /* for messages, until the writer is freed */
    gv_atomic_file file; /* path + ".tmp", renamed over path by finish */
    bool failed;    /* a write failed: the file is incomplete, finish refuses */
    int64_t count, next;
    st_out *entries;
};

/* ---- the header text ---------------------------------------------------------- */
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

static bool build_header(sbuf *b, const grove_safetensors_writer *w, int64_t nmeta, const char *const *keys,
                         const char *const *values)
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
    for (int64_t i = 0; i < w->count; i++) {
        const st_out *e = &w->entries[i];
        if (!first) sb_str(b, ",");
        first = false;
        sb_json_string(b, e->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, gv_st_dtype_name(e->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int32_t d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)e->shape[d]);
            sb_str(b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%lld,%lld]}", (long long)offset,
                 (long long)(offset + e->bytes));
        sb_str(b, num);
        offset += e->bytes;
    }
    sb_str(b, "}");
    while (!b->oom && b->len % 8) sb_put(b, " ", 1);
    return !b->oom;
}

/* ---- argument checks ------------------------------------------------------------ */
static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Checks that n strings are present, valid UTF-8, (optionally) non-empty and unique. */
static bool check_strings(const char *op, const char *path, const char *what, int64_t n, const char *const *s,
                          bool nonempty)
{
    for (int64_t i = 0; i < n; i++) {
        if (!s[i]) {
            gv_fail("%s: %s: %s %lld is NULL", op, path, what, (long long)i);
            return false;
        }
        if (nonempty && !s[i][0]) {
            gv_fail("%s: %s: %s %lld is empty", op, path, what, (long long)i);
            return false;
        }
        if (!gv_utf8_valid(s[i], strlen(s[i]))) {
            gv_fail("%s: %s: %s %lld is not valid UTF-8", op, path, what, (long long)i);
            return false;
        }
    }
    const char **sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) {
        gv_fail("%s: %s: out of memory", op, path);
        return false;
    }
    if (n) memcpy(sorted, s, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_cstr);
    bool ok = true;
    for (int64_t i = 1; i < n && ok; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            gv_fail("%s: %s: duplicate %s '%s'", op, path, what, sorted[i]);
            ok = false;
        }
    }
    free(sorted);
    return ok;
}

static bool check_names_and_meta(const char *op, const char *path, int64_t n, const char *const *names,
                                 int64_t nmeta, const char *const *keys, const char *const *values)
{
    if (!check_strings(op, path, "tensor name", n, names, true)) return false;
    for (int64_t i = 0; i < n; i++) {
        if (strcmp(names[i], ST_METADATA_KEY) == 0) {
            gv_fail("%s: %s: '%s' is reserved and cannot name a tensor", op, path, ST_METADATA_KEY);
            return false;
        }
    }
    if (!check_strings(op, path, "metadata key", nmeta, keys, false)) return false;
    for (int64_t i = 0; i < nmeta; i++) {
        if (!values[i]) {
            gv_fail("%s: %s: metadata value for key '%s' is NULL", op, path, keys[i]);
            return false;
        }
        if (!gv_utf8_valid(values[i], strlen(values[i]))) {
            gv_fail("%s: %s: metadata value for key '%s' is not valid UTF-8", op, path, keys[i]);
            return false;
        }
    }
    return true;
}

/* A tensor whose data can be written: present, live, on the CPU, known dtype. */
static bool check_tensor(const char *op, const char *path, const char *name, const grove_tensor *t)
{
    if (!t) {
        gv_fail("%s: %s: tensor '%s' is NULL", op, path, name);
        return false;
    }
    if (!t->storage) {
        gv_fail("%s: %s: tensor '%s' was freed", op, path, name);
        return false;
    }
    if (!gv_st_dtype_name(t->dtype)) {
        gv_fail("%s: %s: tensor '%s' has unknown dtype %d", op, path, name, t->dtype);
        return false;
    }
    return true;
}

/* ---- files ---------------------------------------------------------------------- */
/* Frees w, removing its temporary file if one is still open. */
static void writer_discard(grove_safetensors_writer *w)
{
    if (!w) return;
    gv_atomic_abort(&w->file);
    for (int64_t i = 0; i < w->count; i++) free(w->entries[i].name);
    free(w->entries);
    free(w->path);
    free(w);
}

static grove_safetensors_writer *writer_open(const char *op, const char *path, int64_t n, const char *const *names,
                                             const int32_t *dtypes, const int32_t *ndims, const int64_t *shapes,
                                             int64_t nmeta, const char *const *keys, const char *const *values)
{
    if (!path || !path[0]) return gv_fail_null("%s: expected a file path", op);
    if (n < 0 || nmeta < 0) return gv_fail_null("%s: %s: negative count", op, path);
    if (n > 0 && (!names || !dtypes || !ndims || !shapes))
        return gv_fail_null("%s: %s: %lld tensors but no name, dtype, ndim or shape array", op, path, (long long)n);
    if (nmeta > 0 && (!keys || !values))
        return gv_fail_null("%s: %s: %lld metadata entries but no key or value array", op, path, (long long)nmeta);
    if (!check_names_and_meta(op, path, n, names, nmeta, keys, values)) return NULL;

    grove_safetensors_writer *w = calloc(1, sizeof *w);
    if (!w) return gv_fail_null("%s: %s: out of memory", op, path);
    w->op = op;
    w->file.fd = -1;
    w->path = strdup(path);
    w->entries = calloc((size_t)(n ? n : 1), sizeof *w->entries);
    if (!w->path || !w->entries) {
        writer_discard(w);
        return gv_fail_null("%s: %s: out of memory", op, path);
    }

    for (int64_t i = 0; i < n; i++) {
        st_out *e = &w->entries[i];
        if (!gv_st_dtype_name(dtypes[i])) {
            gv_fail("%s: %s: tensor '%s' has unknown dtype %d", op, path, names[i], dtypes[i]);
            goto fail;
        }
        if (ndims[i] < 0 || ndims[i] > GROVE_MAX_DIMS) {
            gv_fail("%s: %s: tensor '%s' has %d dimensions; grove supports 0 to %d", op, path, names[i], ndims[i],
                    GROVE_MAX_DIMS);
            goto fail;
        }
        e->dtype = dtypes[i];
        e->ndim = ndims[i];
        int64_t numel = 1;
        for (int32_t d = 0; d < e->ndim; d++) {
            int64_t s = shapes[i * GROVE_MAX_DIMS + d];
            e->shape[d] = s;
            /* As the reader: no tensor has 2^50 elements, and the byte
             * arithmetic below cannot overflow. */
            if (s < 0 || (s > 0 && numel > ((int64_t)1 << 50) / s)) {
                gv_fail("%s: %s: tensor '%s' has an invalid shape %s", op, path, names[i],
                        gv_dims_str(e->ndim, shapes + i * GROVE_MAX_DIMS));
                goto fail;
            }
            numel *= s;
        }
        e->bytes = numel * grove_dtype_size(e->dtype);
        if (!(e->name = strdup(names[i]))) {
            gv_fail("%s: %s: out of memory", op, path);
            goto fail;
        }
        w->count = i + 1;
    }
    w->count = n;

    sbuf header = {0};
    if (!build_header(&header, w, nmeta, keys, values)) {
        free(header.p);
        gv_fail("%s: %s: out of memory building the header", op, path);
        goto fail;
    }
    if (header.len > ST_MAX_HEADER) {
        free(header.p);
        gv_fail("%s: %s: header would be %zu bytes, more than readers accept (%llu)", op, path, header.len,
                ST_MAX_HEADER);
        goto fail;
    }
    if (!gv_atomic_open(&w->file, op, path)) {
        free(header.p);
        goto fail; /* nothing was created, so nothing is removed */
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
    bool ok = gv_atomic_write(&w->file, op, len8, 8) && gv_atomic_write(&w->file, op, header.p, header.len);
    free(header.p);
    if (!ok) {
        writer_discard(w);
        return NULL;
    }
    return w;

fail:
    writer_discard(w);
    return NULL;
}

/* ---- the public streaming API -------------------------------------------------- */
grove_safetensors_writer *grove_safetensors_writer_open(const char *path, int64_t n, const char *const *names,
                                                        const int32_t *dtypes, const int32_t *ndims,
                                                        const int64_t *shapes, int64_t nmeta,
                                                        const char *const *meta_keys, const char *const *meta_values)
{
    return writer_open("safetensors_writer", path, n, names, dtypes, ndims, shapes, nmeta, meta_keys, meta_values);
}

grove_status grove_safetensors_writer_write(grove_safetensors_writer *w, const char *name, grove_tensor *t)
{
    if (!w) return gv_fail("safetensors_writer: expected an open writer, got NULL");
    const char *op = w->op, *path = w->path;
    if (w->failed) return gv_fail("%s: %s: an earlier write failed; abort the writer", op, path);
    if (!name) return gv_fail("%s: %s: expected a tensor name, got NULL", op, path);
    if (w->next >= w->count)
        return gv_fail("%s: %s: all %lld tensors were written; '%s' is not in the header", op, path,
                       (long long)w->count, name);
    const st_out *e = &w->entries[w->next];
    if (strcmp(name, e->name) != 0)
        return gv_fail("%s: %s: tensors must come in header order: expected '%s' (number %lld of %lld), got '%s'",
                       op, path, e->name, (long long)w->next + 1, (long long)w->count, name);
    if (!check_tensor(op, path, name, t)) return -1;
    if (t->dtype != e->dtype)
        return gv_fail("%s: %s: tensor '%s' is %s, the header says %s", op, path, name, gv_st_dtype_name(t->dtype),
                       gv_st_dtype_name(e->dtype));
    bool same = t->ndim == e->ndim;
    for (int32_t d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
    if (!same)
        return gv_fail("%s: %s: tensor '%s' has shape %s, the header says %s", op, path, name, gv_shape_str(t),
                       gv_dims_str(e->ndim, e->shape));
    /* contiguous host bytes: a CUDA tensor is copied over first */
    grove_tensor *c = gv_on_device(op, t, GROVE_CPU);
    if (!c) return -1;
    bool ok = gv_atomic_write(&w->file, op, c->data, (size_t)e->bytes);
    grove_tensor_release(c);
    if (!ok) {
        w->failed = true;
        return -1;
    }
    w->next++;
    return 0;
}

grove_status grove_safetensors_writer_finish(grove_safetensors_writer *w)
{
    if (!w) return gv_fail("safetensors_writer: expected an open writer, got NULL");
    const char *op = w->op, *path = w->path;
    if (w->failed) {
        gv_fail("%s: %s: an earlier write failed; nothing was saved", op, path);
        goto fail;
    }
    if (w->next < w->count) {
        gv_fail("%s: %s: finished after %lld of %lld tensors ('%s' was never written); nothing was saved", op, path,
                (long long)w->next, (long long)w->count, w->entries[w->next].name);
        goto fail;
    }
    if (!gv_atomic_commit(&w->file, op)) goto fail;
    writer_discard(w); /* the file is committed: only memory is freed */
    return 0;

fail:
    writer_discard(w);
    return -1;
}

void grove_safetensors_writer_abort(grove_safetensors_writer *w) { writer_discard(w); }

/* ---- a whole file at once ------------------------------------------------------- */
grove_status grove_safetensors_save(const char *path, int64_t n, const char *const *names,
                                    grove_tensor *const *tensors, int64_t nmeta, const char *const *meta_keys,
                                    const char *const *meta_values)
{
    const char *op = "safetensors_save";
    if (!path || !path[0]) return gv_fail("%s: expected a file path", op);
    if (n < 0 || nmeta < 0) return gv_fail("%s: %s: negative count", op, path);
    if (n > 0 && (!names || !tensors))
        return gv_fail("%s: %s: %lld tensors but no name or tensor array", op, path, (long long)n);
    /* Every argument is checked before the temporary is created, so a
     * rejected save touches nothing on disk. */
    if (!check_strings(op, path, "tensor name", n, names, true)) return -1;
    for (int64_t i = 0; i < n; i++)
        if (strcmp(names[i], ST_METADATA_KEY) != 0 && !check_tensor(op, path, names[i], tensors[i])) return -1;

    int32_t *dtypes = malloc((size_t)(n ? n : 1) * sizeof *dtypes);
    int32_t *ndims = malloc((size_t)(n ? n : 1) * sizeof *ndims);
    int64_t *shapes = malloc((size_t)(n ? n : 1) * GROVE_MAX_DIMS * sizeof *shapes);
    if (!dtypes || !ndims || !shapes) {
        free(dtypes), free(ndims), free(shapes);
        return gv_fail("%s: %s: out of memory", op, path);
    }
    for (int64_t i = 0; i < n; i++) {
        const grove_tensor *t = tensors[i];
        dtypes[i] = t ? t->dtype : GROVE_F32; /* a NULL tensor under a reserved name fails in writer_open */
        ndims[i] = t ? t->ndim : 0;
        for (int32_t d = 0; t && d < t->ndim; d++) shapes[i * GROVE_MAX_DIMS + d] = t->shape[d];
    }
    grove_safetensors_writer *w =
        writer_open(op, path, n, names, dtypes, ndims, shapes, nmeta, meta_keys, meta_values);
    free(dtypes), free(ndims), free(shapes);
    if (!w) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (grove_safetensors_writer_write(w, names[i], tensors[i]) != 0) {
            writer_discard(w);
            return -1;
        }
    }
    return grove_safetensors_writer_finish(w);
}
